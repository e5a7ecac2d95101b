"""memscope's pytest plugin (entry point ``pytest11``): the no-growth check and fixtures.

``@pytest.mark.no_growth(...)`` (or ``--memscope-no-growth`` for every test) reruns the
whole test, function-scoped fixtures included, ``warmup + rounds`` times and fails it
when it leaks. Loading this module is cheap: ``memscope.testing`` is imported only
when a test is checked, and then only through its front-end seam,
:mod:`memscope.testing.harness`.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Generator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from _pytest.reports import TestReport

    from memscope import Diff, Snapshot
    from memscope.testing.harness import CheckOptions, GrowthReport

PROPERTY = "memscope_no_growth"  # user_properties key: survives xdist and lands in junitxml
# pytest < 7 has no stash: loading must still not break such a run (the check needs pytest 7+)
_TASKS_LEFT: Any = pytest.StashKey[list[int]]() if hasattr(pytest, "StashKey") else None
#: the integer settings: name -> (default, lowest accepted); the highest is MAX_RUNS
INT_SETTINGS = {"warmup": (3, 0), "rounds": (5, 1), "max_rounds": (60, 1)}
#: memscope.testing's MAX_ROUNDS, copied (a test holds them equal) so that loading the
#: plugin and checking its settings do not import memscope.testing
MAX_RUNS = 1000
_BOOL_SETTINGS = ("no_growth", "trace")


def pytest_addoption(parser: pytest.Parser) -> None:
    """Options in the ``memscope`` group, each mirrored by an ini setting."""
    group = parser.getgroup("memscope", "memscope: fail tests that leak memory")
    group.addoption(
        "--memscope-no-growth",
        action="store_true",
        default=None,
        dest="memscope_no_growth",
        help="run the no-growth check on every test (exempt one with "
        "@pytest.mark.allow_growth); ini: memscope_no_growth",
    )
    group.addoption(
        "--memscope-warmup",
        default=None,
        dest="memscope_warmup",
        metavar="N",
        help="unmeasured runs before the measured ones (default 3); ini: memscope_warmup",
    )
    group.addoption(
        "--memscope-rounds",
        default=None,
        dest="memscope_rounds",
        metavar="N",
        help="measured runs at least; growth on every one is a leak, and an unclear "
        "series measures on (default 5); ini: memscope_rounds",
    )
    group.addoption(
        "--memscope-max-rounds",
        default=None,
        dest="memscope_max_rounds",
        metavar="N",
        help="measure on while a series is unclear (a leak in steps, a cache filling), up "
        "to N rounds (default 60); ini: memscope_max_rounds",
    )
    group.addoption(
        "--memscope-trace",
        action="store_true",
        default=None,
        dest="memscope_trace",
        help="turn tracemalloc on for the measured runs to name allocation sites "
        "(slower); ini: memscope_trace",
    )
    parser.addini(
        "memscope_no_growth", "run the no-growth check on every test", type="bool", default=False
    )
    parser.addini("memscope_warmup", "no-growth check: unmeasured runs (default 3)", default="3")
    parser.addini("memscope_rounds", "no-growth check: measured runs (default 5)", default="5")
    parser.addini(
        "memscope_max_rounds",
        "no-growth check: most measured runs while unclear (default 60)",
        default="60",
    )
    parser.addini(
        "memscope_trace",
        "no-growth check: trace allocations to name the sites",
        type="bool",
        default=False,
    )


def pytest_configure(config: pytest.Config) -> None:
    """Register the markers (the repo runs with --strict-markers)."""
    config.addinivalue_line(
        "markers",
        "no_growth(warmup=3, rounds=5, trace=None, ignore=None, threads='process', ...): "
        "rerun the whole test (function fixtures included) and fail it if memory, file "
        "descriptors, threads or asyncio tasks grow; options as memscope.testing.assert_no_growth",
    )
    config.addinivalue_line(
        "markers",
        "allow_growth(reason=...): exempt this test from --memscope-no-growth",
    )
    # a bad command-line or ini value is a usage error of the whole run: say so at once
    _config_defaults(config)


def _setting(config: pytest.Config, name: str) -> Any:
    value = config.getoption(f"memscope_{name}")
    if value is None:
        try:
            value = config.getini(f"memscope_{name}")
        # a bool ini setting pytest could not read ("maybe"): pytest 9 raises a UsageError
        # that does not name the setting, older ones a ValueError
        except (ValueError, pytest.UsageError) as exc:
            raise pytest.UsageError(
                f"memscope_{name} (ini) must be true or false (or yes/no, on/off, 1/0): {exc}"
            ) from None
    return value


def _int_setting(config: pytest.Config, name: str) -> int:
    raw = _setting(config, name)
    low = INT_SETTINGS[name][1]
    value: int | None = None
    if isinstance(raw, int) and not isinstance(raw, bool):
        value = raw
    elif isinstance(raw, str) and raw.strip().lstrip("+-").isdigit():
        value = int(raw)
    if value is None or not low <= value <= MAX_RUNS:
        raise pytest.UsageError(
            f"--memscope-{name} / memscope_{name} must be an integer from {low} to "
            f"{MAX_RUNS}, got {raw!r}"
        )
    return value


def _config_defaults(config: pytest.Config) -> dict[str, Any]:
    """The check options the command line and ini give; a bad one is a UsageError."""
    out: dict[str, Any] = {name: _int_setting(config, name) for name in INT_SETTINGS}
    for name in _BOOL_SETTINGS:
        _setting(config, name)  # read once up front: a bad value stops the run here
    if _setting(config, "trace"):
        out["trace"] = True
    return out


def _options_for(item: pytest.Item) -> CheckOptions | None:
    marker = item.get_closest_marker("no_growth")
    if item.get_closest_marker("allow_growth") is not None:
        return None
    if marker is None and not _setting(item.config, "no_growth"):
        return None
    if marker is None and not isinstance(item, pytest.Function):
        # --memscope-no-growth checks what can be rerun: a doctest, for one, empties its
        # globals after a run, and other plugins' items may not run twice at all
        return None
    from memscope.testing.harness import CheckOptions

    kwargs = _config_defaults(item.config)
    if marker is not None:
        if marker.args:
            raise pytest.UsageError(
                f"{item.nodeid}: @pytest.mark.no_growth takes keyword arguments only, "
                f"got positional {marker.args!r}"
            )
        kwargs.update(marker.kwargs)
    try:
        return CheckOptions.build(**kwargs)
    except (TypeError, ValueError) as exc:
        # the settings were checked in pytest_configure, so this is the marker's doing
        raise pytest.UsageError(f"{item.nodeid}: @pytest.mark.no_growth: {exc}") from None


class _Abort(Exception):
    """A run of the test failed or skipped: stop repeating and report that run."""


class NoGrowthCheckError(Exception):
    """The no-growth check itself failed (a ``clear=`` hook raised, or memscope did)."""


# what must end the session rather than one test, as pytest's own runner treats them
_RERAISE = (pytest.exit.Exception, KeyboardInterrupt)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> bool | None:
    """Run a checked test warmup + rounds times and log only the final outcome."""
    try:
        opts = _options_for(item)
    except Exception as exc:
        # a bad marker (or a marker argument that raises when read) fails its own test,
        # not the session (nor an xdist worker): pytest_runtest_call raises it again
        item._memscope_bad_options = exc  # type: ignore[attr-defined]
        return None
    if opts is None:
        return None
    ihook = item.ihook
    ihook.pytest_runtest_logstart(nodeid=item.nodeid, location=item.location)
    for report in _run_checked(item, nextitem, opts):
        ihook.pytest_runtest_logreport(report=report)
    ihook.pytest_runtest_logfinish(nodeid=item.nodeid, location=item.location)
    return True


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, object, None]:
    """Count the asyncio tasks a checked run leaves pending; fail a test whose marker is bad."""
    bad = getattr(item, "_memscope_bad_options", None)
    if isinstance(bad, pytest.UsageError):
        pytest.fail(str(bad), pytrace=False)
    if isinstance(bad, Exception):
        raise bad
    # (an old-style hookwrapper: new-style ones need pluggy 1.2, and this plugin loads in
    # every pytest run where memscope is installed)
    left = item.stash.get(_TASKS_LEFT, None) if _TASKS_LEFT is not None else None
    if left is None:
        yield
        return
    from memscope.testing.harness import pending_tasks

    before = pending_tasks()
    yield  # the outcome (and any exception of the test) stays with pytest
    # each run gets a fresh loop that cancels leftovers at teardown: count them now
    left[0] += max(0, pending_tasks() - before)


def _run_checked(
    item: pytest.Item, nextitem: pytest.Item | None, opts: CheckOptions
) -> list[TestReport]:
    from _pytest.runner import CallInfo, runtestprotocol

    from memscope.testing.harness import run_check

    # tearing down to the parent drops exactly the function-scoped fixtures, so each
    # run sets them up and tears them down again while wider scopes stay up
    parent: Any = item.parent
    started = time.perf_counter()
    last: list[TestReport] = []
    left = [0]
    item.stash[_TASKS_LEFT] = left
    sections = getattr(item, "_report_sections", None)
    properties = list(item.user_properties)
    held = _HeldReports(item.session)

    def run_once(_: int) -> None:
        nonlocal last
        if isinstance(sections, list):
            del sections[:]  # captured output would otherwise pile up run after run
        # record_property() appends per run: keep what one run records, not one per run
        item.user_properties[:] = properties
        last = []  # drop the previous run's reports before this run, not after
        held.clear()
        last = runtestprotocol(item, nextitem=parent, log=False)
        _prune_finished_finalizers(item)
        if any(rep.failed or rep.skipped for rep in last) or held.failed():
            raise _Abort

    def check() -> tuple[str, str] | None:
        try:
            return _leak_text(run_check(run_once, opts, label=item.nodeid, tasks=lambda: left[0]))
        except _Abort:
            raise  # a run failed or skipped: that run's reports are the outcome
        except Exception as exc:
            raise NoGrowthCheckError(f"could not run: {type(exc).__name__}: {exc}") from exc

    try:
        # everything the check raises, before, between or after the runs (a skip or
        # fail of a clear hook included), becomes this test's call outcome, as pytest's
        # runner does for a phase; a test must never end with no outcome at all
        with held:
            checked = CallInfo.from_call(check, when="call", reraise=_RERAISE)
    finally:
        del item.stash[_TASKS_LEFT]
        # the wider scopes the next test does not share go now, reported as a teardown
        setupstate: Any = item.session._setupstate
        call = CallInfo.from_call(lambda: setupstate.teardown_exact(nextitem), when="teardown")
        final = item.ihook.pytest_runtest_makereport(item=item, call=call)
    reports = list(last)
    for rep in reports:
        if rep.when == "call":
            # --durations and junit then show what the check cost, reruns included
            rep.duration = time.perf_counter() - started
    if final.failed or not reports:
        reports = [rep for rep in reports if rep.when != "teardown"] + [final]
    if checked.excinfo is not None and not checked.excinfo.errisinstance(_Abort):
        broken: TestReport = item.ihook.pytest_runtest_makereport(item=item, call=checked)
        broken.duration = time.perf_counter() - started
        return held.around(_with_broken(reports, broken))
    if checked.excinfo is None and checked.result is not None:
        _fail_with(reports, *checked.result)
    return held.around(reports)


class _HeldReports:
    """Reports a checked run logs by itself (subtests): held, and only the last run's logged.

    pytest's subtests (``subtests`` fixture, unittest's ``subTest()``) log a report per
    subtest through ``item.ihook`` during the call; logged on every rerun, the terminal
    reporter and junitxml would keep one per run, which is the runner's growth, not the
    test's. While the check runs, ``session.gethookproxy`` hands out relays that hold
    those reports instead; :meth:`around` puts the last run's in their place.
    """

    def __init__(self, session: Any) -> None:
        self._session = session
        self._reports: list[Any] = []
        self._real: Any = None

    def __enter__(self) -> None:
        self._real = self._session.gethookproxy
        self._session.gethookproxy = self._relay

    def __exit__(self, *exc: object) -> None:
        # the instance attribute goes: the class's method answers again
        vars(self._session).pop("gethookproxy", None)
        self._real = None

    def _relay(self, fspath: Any) -> Any:
        return _Relay(self._real(fspath), self)

    def hold(self, report: Any) -> None:
        """Keep ``report`` of this run."""
        self._reports.append(report)

    def clear(self) -> None:
        """Forget the previous run's reports."""
        self._reports = []

    def failed(self) -> bool:
        """True if a held report of this run failed (a failed subtest fails the test)."""
        return any(getattr(rep, "failed", False) for rep in self._reports)

    def around(self, reports: list[Any]) -> list[Any]:
        """``reports`` with the held ones just before the call phase, as pytest logs them."""
        held, self._reports = self._reports, []
        if not held:
            return reports
        at = next((k for k, rep in enumerate(reports) if rep.when == "call"), len(reports))
        return [*reports[:at], *held, *reports[at:]]


class _Relay:
    """A hook relay whose ``pytest_runtest_logreport`` holds the report (see _HeldReports)."""

    def __init__(self, real: Any, owner: _HeldReports) -> None:
        self._real = real
        self._owner = owner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    def pytest_runtest_logreport(self, *, report: Any) -> None:
        """Hold the report for the end of the check."""
        self._owner.hold(report)


def _leak_text(report: GrowthReport) -> tuple[str, str] | None:
    """The failure text and summary line of a leak; formatted inside the check, so that a
    bug in the report is this test's error as well."""
    if not report.leaked:
        return None
    return report.format(top=report_top(report)), _short(report)


def _with_broken(reports: list[TestReport], broken: TestReport) -> list[TestReport]:
    """``reports`` with ``broken`` (the check's own error) as their call phase."""
    if any(rep.failed or rep.skipped for rep in reports):
        # the run's own failure stays the outcome; the check's error is shown beside it
        failed = next(rep for rep in reports if rep.failed or rep.skipped)
        failed.sections.append(("memscope no-growth check", str(broken.longrepr)))
        return reports
    # the error may come before any run (the baseline reading): then there is no setup
    setups = [rep for rep in reports if rep.when == "setup"]
    teardowns = [rep for rep in reports if rep.when == "teardown"]
    return [*setups, broken, *teardowns]


def _prune_finished_finalizers(item: pytest.Item) -> None:
    """Drop the finalizers a finished function fixture left on wider-scoped fixtures.

    pytest registers ``partial(child.finish, request=...)`` on every fixture a fixture
    depends on and never removes it; once per session that is harmless, but a rerun adds
    one per run (pytest-asyncio's loop fixtures hit this), which would look like a leak.
    Calling ``finish`` on a finished fixture is a no-op, so dropping them changes nothing.
    """
    # every definition, not only the item's closure: getfixturevalue() requests are not in it
    manager = getattr(item.session, "_fixturemanager", None)
    for fixturedef in _all_fixturedefs(manager):
        fins = getattr(fixturedef, "_finalizers", None)
        if isinstance(fins, list) and fins:
            fins[:] = [fin for fin in fins if not _is_spent(fin, item)]


def _all_fixturedefs(manager: object) -> list[Any]:
    """Every FixtureDef the manager knows, whichever internal layout this pytest uses."""
    out: list[Any] = []
    for attr in ("_arg2fixturedefs", "_arg2node2fixturedefs", "_arg2nodeid2fixturedefs"):
        table = getattr(manager, attr, None)
        if not isinstance(table, dict):
            continue
        for value in table.values():
            groups = value.values() if isinstance(value, dict) else [value]
            for group in groups:
                if isinstance(group, (list, tuple)):
                    out.extend(group)
    return out


def _is_spent(fin: object, item: pytest.Item) -> bool:
    if not isinstance(fin, functools.partial):
        return False
    owner = getattr(fin.func, "__self__", None)
    request = fin.keywords.get("request")
    return (
        getattr(fin.func, "__name__", "") == "finish"
        and getattr(owner, "cached_result", True) is None
        and getattr(request, "node", None) is item
    )


def _fail_with(reports: list[TestReport], text: str, short: str) -> None:
    call = next((rep for rep in reports if rep.when == "call"), None)
    if call is None:  # pragma: no cover - a leak needs a call phase that passed
        return
    call.outcome = "failed"
    call.longrepr = text
    call.user_properties = [*call.user_properties, (PROPERTY, short)]


def report_top(report: GrowthReport) -> int:
    """How many rows of each list the failure text shows."""
    return max(1, min(10, len(report.grew) or 10))


def _short(report: GrowthReport) -> str:
    from memscope.testing.harness import signed

    parts = list(report.failures)
    if report.grew:
        parts.append("types: " + ", ".join(f"{g.type} {signed(g.deltas)}" for g in report.grew[:3]))
    if report.sites:
        parts.append("sites: " + ", ".join(f"{s.filename}:{s.lineno}" for s in report.sites[:3]))
    return "; ".join(parts)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """List the tests that leaked, with their top types and sites."""
    leaks: list[tuple[str, str]] = []
    for rep in terminalreporter.stats.get("failed", ()):
        for key, value in getattr(rep, "user_properties", ()):
            if key == PROPERTY:
                leaks.append((rep.nodeid, str(value)))
    if not leaks:
        return
    terminalreporter.write_sep("=", "memscope: tests that grew memory", red=True)
    for nodeid, summary in leaks:
        terminalreporter.write_line(f"{nodeid}: {summary}")


class SnapshotHelper:
    """``memscope_snapshot``: call it to take a snapshot; ``since(first)`` diffs against now."""

    def __call__(
        self, label: str | None = None, deep: bool = False, collectors: Any = None
    ) -> Snapshot:
        import memscope

        return memscope.snapshot(label=label, deep=deep, collectors=collectors)

    def compare(self, a: Snapshot, b: Snapshot) -> Diff:
        """``memscope.compare(a, b)``."""
        import memscope

        return memscope.compare(a, b)

    def since(self, first: Snapshot, *, deep: bool = False) -> Diff:
        """Take a snapshot with the same collectors as ``first`` and diff it against ``first``."""
        import memscope
        from memscope._registry import registered_collectors

        names: list[str] | None = None
        if first.collectors:
            # first.collectors also lists a plugged-in collector whose entry point failed
            # to load (it has only an error): snapshot() refuses names that do not exist
            known = registered_collectors()
            names = [name for name in first.collectors if name in known]
        later = memscope.snapshot(label="now", deep=deep, collectors=names)
        return memscope.compare(first, later)


@pytest.fixture
def memscope_snapshot() -> Callable[..., Any]:
    """Take memscope snapshots inside a test: ``snap = memscope_snapshot(label="x")``."""
    return SnapshotHelper()
