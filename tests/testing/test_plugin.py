"""The pytest plugin, driven through pytester: markers, options, ini, reruns, summary, xdist.

Verdicts are checked in pytest subprocesses: an in-process pytester records every hook
call of every rerun, which is real growth and would (rightly) be flagged.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

pytest_plugins = ["pytester"]

INI = """
[pytest]
asyncio_default_fixture_loop_scope = function
filterwarnings = error
memscope_warmup = 1
memscope_rounds = 3
memscope_max_rounds = 3
"""

LEAKY_FIXTURE = """
import pytest

KEPT = []
SETUPS = []
TEARDOWNS = []

@pytest.fixture
def session_token():
    SETUPS.append(1)
    KEPT.append({"token": len(KEPT)})  # leaked on every setup, never released
    yield
    TEARDOWNS.append(1)

@pytest.fixture
def scratch():
    data = [str(i) * 10 for i in range(1000)]
    KEPT.append(data)
    yield data
    KEPT.remove(data)
"""


@pytest.fixture
def ini(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeini(INI)
    return pytester


def test_marker_reruns_fixtures_and_fails_only_the_leak(ini: pytest.Pytester) -> None:
    ini.makepyfile(
        LEAKY_FIXTURE
        + """
@pytest.mark.no_growth
def test_leaks_in_fixture(session_token):
    print("body ran")

@pytest.mark.no_growth
def test_frees_in_teardown(scratch):
    assert len(scratch) == 1000

def test_counts():
    # warmup 1 + rounds 3; after the leak verdict, a pass with the complete census of
    # 1 + 3 (the screen's census saw no type: the leaked dicts hold only atomic values,
    # which the gc does not track) and a traced pass of 3 + 1
    assert len(SETUPS) == len(TEARDOWNS) == 12
"""
    )
    result = ini.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2, failed=1)
    out = result.stdout.str()
    assert "types that grew:" in out
    assert "dict: +1 +1 +1" in out
    assert "memscope: tests that grew memory" in out
    result.stdout.fnmatch_lines(["*test_leaks_in_fixture*: *type(s) grew*"])
    # the reruns log nothing: one progress character per test
    result.stdout.fnmatch_lines(["test_marker_reruns_fixtures_and_fails_only_the_leak.py F.. *"])
    # the site of the leak is named, with its line
    assert 'KEPT.append({"token": len(KEPT)})' in out


def test_option_and_ini_apply_to_every_test_and_allow_growth_exempts(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        """
import pytest
KEPT = []

def test_leak():
    KEPT.append(object())

@pytest.mark.allow_growth(reason="fills a registry on purpose")
def test_exempt():
    KEPT.append(object())

def test_clean():
    assert sum(range(10)) == 45
"""
    )
    pytester.makeini(INI)
    on = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--memscope-no-growth")
    on.assert_outcomes(passed=2, failed=1)
    on.stdout.fnmatch_lines(["*test_leak*: *grew*"])
    pytester.makeini(INI + "memscope_no_growth = true\n")
    by_ini = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    by_ini.assert_outcomes(passed=2, failed=1)


def test_command_line_overrides_ini_and_marker_overrides_both(pytester: pytest.Pytester) -> None:
    pytester.makeini(INI)
    pytester.makepyfile(
        """
import pytest
RUNS = {"marked": 0, "default": 0}  # small ints are shared: counting allocates nothing

@pytest.mark.no_growth(warmup=0, rounds=2, max_rounds=2)
def test_marked():
    RUNS["marked"] += 1

@pytest.mark.no_growth
def test_default():
    RUNS["default"] += 1

def test_counts():
    # 1 + 2 runs: the ini's 1 + 3 would be 4, the marker's 0 + 2 would be 2
    assert RUNS == {"marked": 2, "default": 1 + 2}
"""
    )
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "--memscope-warmup=1", "--memscope-rounds", "2"
    )
    result.assert_outcomes(passed=3)


def test_failing_or_skipped_run_is_reported_once_as_itself(ini: pytest.Pytester) -> None:
    ini.makepyfile(
        """
import pytest
RUNS = []

@pytest.mark.no_growth
def test_fails():
    RUNS.append(1)
    assert RUNS == [], "real failure"

@pytest.mark.no_growth
def test_skips():
    pytest.skip("not here")

def test_ran_once():
    assert RUNS == [1]
"""
    )
    result = ini.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=1, skipped=1)
    assert "real failure" in result.stdout.str()
    assert "memscope: tests that grew memory" not in result.stdout.str()


def test_bad_marker_fails_its_test_only_and_bad_options_stop_the_run(
    ini: pytest.Pytester,
) -> None:
    ini.makepyfile(
        """
import pytest

@pytest.mark.no_growth(rounds=0)
def test_x():
    pass

def test_next_one_still_runs():
    pass
"""
    )
    result = ini.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*test_x*no_growth*rounds must be an int between 1 and 1000*"])
    # a bad command-line value is the run's usage error, reported before any test (no
    # test runs, so no rerun can be recorded in-process: no subprocess needed)
    result = ini.runpytest("-p", "no:cacheprovider", "--memscope-rounds", "many")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--memscope-rounds*must be an integer*"])


@pytest.mark.parametrize(
    ("args", "named", "accepts"),
    [
        (["--memscope-rounds=0"], "--memscope-rounds / memscope_rounds", "from 1 to 1000"),
        (["--memscope-rounds=100000"], "--memscope-rounds / memscope_rounds", "from 1 to 1000"),
        (["--memscope-warmup=-1"], "--memscope-warmup / memscope_warmup", "from 0 to 1000"),
        (["-o", "memscope_warmup=2.5"], "--memscope-warmup / memscope_warmup", "from 0 to 1000"),
        (["-o", "memscope_rounds="], "--memscope-rounds / memscope_rounds", "from 1 to 1000"),
        (["-o", "memscope_no_growth=maybe"], "memscope_no_growth", "true or false"),
        (["-o", "memscope_trace=maybe"], "memscope_trace", "true or false"),
    ],
)
def test_bad_option_or_ini_value_is_a_usage_error_before_any_test(
    ini: pytest.Pytester, args: list[str], named: str, accepts: str
) -> None:
    # no marker anywhere: nothing may blame one, and no test may run (or fail) at all
    ini.makepyfile("def test_plain():\n    pass\n")
    result = ini.runpytest("-p", "no:cacheprovider", *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    err = result.stderr.str()
    assert named in err and accepts in err, err
    assert "no_growth(" not in err and "mark" not in err
    assert "passed" not in result.stdout.str() and "failed" not in result.stdout.str()


def test_option_bounds_are_the_checks_bounds() -> None:
    from memscope import pytest_plugin
    from memscope.testing._options import MAX_ROUNDS, CheckOptions

    # the plugin keeps its own copy so that loading it does not import memscope.testing
    assert pytest_plugin.MAX_RUNS == MAX_ROUNDS
    for name, (default, low) in pytest_plugin.INT_SETTINGS.items():
        assert getattr(CheckOptions(), name) == default
        with pytest.raises(ValueError):
            CheckOptions.build(**{name: low - 1})
        CheckOptions.build(**{name: low})


DOCTEST_MODULE = '''
def add(a, b):
    """
    >>> add(1, 2)
    3
    """
    return a + b
'''

RERUN_STATE = """
import warnings
import pytest

def old_api():
    warnings.warn("old api", DeprecationWarning)
    return 1

@pytest.mark.no_growth
def test_warns_every_call():
    with pytest.warns(DeprecationWarning):
        old_api()

@pytest.mark.no_growth
def test_property(record_property):
    record_property("answer", 42)
"""


def test_rerun_state_does_not_pile_up(ini: pytest.Pytester) -> None:
    # a warning per call, a recorded property per run, and doctests under the global flag:
    # none of them is a leak, and the property appears once in the JUnit XML
    ini.makepyfile(mod=DOCTEST_MODULE, test_state=RERUN_STATE)
    result = ini.runpytest_subprocess(
        "-p",
        "no:cacheprovider",
        "--memscope-no-growth",
        "--doctest-modules",
        "--junitxml=out.xml",
        "-o",
        "junit_family=legacy",
    )
    result.assert_outcomes(passed=3)
    xml = (ini.path / "out.xml").read_text()
    assert xml.count('name="answer"') == 1


def test_async_tests_pytest_asyncio_and_anyio(ini: pytest.Pytester) -> None:
    ini.makepyfile(
        """
import asyncio
import pytest
KEPT = []

@pytest.mark.no_growth
@pytest.mark.asyncio
async def test_asyncio_clean():
    await asyncio.sleep(0)

@pytest.mark.no_growth
@pytest.mark.asyncio
async def test_asyncio_forgotten_task():
    asyncio.get_running_loop().create_task(asyncio.sleep(3600))

@pytest.mark.no_growth
@pytest.mark.anyio
async def test_anyio_leak():
    KEPT.append(bytearray(100))

@pytest.fixture
def anyio_backend():
    return "asyncio"
"""
    )
    result = ini.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=2)
    result.stdout.fnmatch_lines(["*test_asyncio_forgotten_task*asyncio tasks grew*"])
    result.stdout.fnmatch_lines(["*test_anyio_leak*bytearray*"])


def test_memscope_snapshot_fixture(ini: pytest.Pytester) -> None:
    ini.makepyfile(
        """
def test_snap(memscope_snapshot):
    first = memscope_snapshot(label="first", collectors=["tracked"])
    assert first.label == "first"
    diff = memscope_snapshot.since(first)
    assert diff.a is first
    assert memscope_snapshot.compare(first, diff.b).b is diff.b
"""
    )
    ini.runpytest_subprocess("-p", "no:cacheprovider").assert_outcomes(passed=1)


def test_snapshot_since_skips_a_plugin_that_failed_to_load(ini: pytest.Pytester) -> None:
    # a real broken entry point: a dist-info in the pytester directory, which the
    # subprocess has on its path; its collector is listed with an error but does not exist
    dist = ini.path / "memscope_broken_plugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: memscope-broken-plugin\nVersion: 1.0\n"
    )
    (dist / "entry_points.txt").write_text(
        "[memscope.collectors]\nbroken = memscope_no_such_module:Collector\n"
    )
    ini.makepyfile(
        """
def test_since(memscope_snapshot):
    first = memscope_snapshot(label="first")
    assert "broken" in first.collectors  # the failed entry point is reported...
    assert first.errors["broken"].startswith("entry point failed to load")
    diff = memscope_snapshot.since(first)  # ...and not asked for again
    assert diff.a is first
    assert set(diff.b.sections) == set(first.sections)
"""
    )
    ini.runpytest_subprocess("-p", "no:cacheprovider").assert_outcomes(passed=1)


def test_markers_and_options_are_registered(ini: pytest.Pytester) -> None:
    markers = ini.runpytest("--markers").stdout.str()
    assert "@pytest.mark.no_growth(" in markers and "@pytest.mark.allow_growth(" in markers
    helptext = ini.runpytest("--help").stdout.str()
    assert "memscope:" in helptext
    for option in ("--memscope-no-growth", "--memscope-warmup", "--memscope-rounds"):
        assert option in helptext


def test_xdist_workers_report_leaks_to_the_controller(ini: pytest.Pytester) -> None:
    ini.makepyfile(
        """
import pytest
KEPT = []

@pytest.mark.no_growth
def test_leak():
    KEPT.append(str(len(KEPT)) * 5)

@pytest.mark.no_growth
def test_clean():
    assert "".join(["a", "b"]) == "ab"
"""
    )
    result = ini.runpytest_subprocess("-p", "no:cacheprovider", "-n", "2")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*memscope: tests that grew memory*", "*test_leak*: *str*"])


def test_plugin_import_is_cheap() -> None:
    code = (
        "import sys, memscope.pytest_plugin; "
        "heavy = [m for m in ('memscope.testing', 'psutil', 'tracemalloc', 'asyncio') "
        "if m in sys.modules]; print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_a_harness_error_is_its_tests_outcome_with_its_traceback(ini: pytest.Pytester) -> None:
    # a clear hook failing on the baseline reading (before any run) or on a later one: the
    # test still gets one outcome, failed, with the hook's own line in the traceback
    ini.makepyfile(
        """
import pytest
READINGS = []

def fail_on_third():
    READINGS.append(1)
    if len(READINGS) == 3:
        raise LookupError("third reading")

@pytest.mark.no_growth(clear=lambda: 1 / 0)
def test_hook_fails_first():
    pass

@pytest.mark.no_growth(clear=fail_on_third)
def test_hook_fails_later():
    pass

@pytest.mark.no_growth(clear=lambda: pytest.skip("hook skips"))
def test_hook_skips():
    pass

def patterns():
    raise RuntimeError("no patterns today")
    yield

@pytest.mark.no_growth(ignore=patterns())
def test_marker_argument_raises():
    pass

def test_next_one_still_runs():
    pass
"""
    )
    result = ini.runpytest_subprocess("-p", "no:cacheprovider", "-rA")
    result.assert_outcomes(passed=1, failed=3, skipped=1)
    result.stdout.fnmatch_lines(["*RuntimeError: no patterns today*"])
    result.stdout.fnmatch_lines(["*test_hook_fails_first*", "*1 / 0*", "*ZeroDivisionError*"])
    result.stdout.fnmatch_lines(["*raise LookupError*", "*LookupError: third reading*"])
    result.stdout.fnmatch_lines(["*NoGrowthCheckError: could not run: ZeroDivisionError*"])
    result.stdout.fnmatch_lines(["SKIPPED*hook skips*"])
    # selected alone, the test is still counted, and the run fails
    alone = ini.runpytest_subprocess("-p", "no:cacheprovider", "-k", "fails_first")
    alone.assert_outcomes(failed=1)
    assert alone.ret == pytest.ExitCode.TESTS_FAILED


SUBTESTS = """
import unittest

KEPT = []

class Values(unittest.TestCase):
    def test_clean(self):
        for i in range(3):
            with self.subTest(i=i):
                self.assertGreaterEqual(i, 0)

    def test_leaks(self):
        for i in range(2):
            with self.subTest(i=i):
                KEPT.append({"i": [i]})

    def test_one_subtest_fails(self):
        for i in range(3):
            with self.subTest(i=i):
                self.assertLess(i, 2)

def test_fixture_clean(subtests):
    for i in range(3):
        with subtests.test(msg="x", i=i):
            assert i >= 0
"""


def test_subtest_records_are_the_runners_not_the_tests(ini: pytest.Pytester) -> None:
    """pytest keeps a report per subtest it logs: reruns must not log them again."""
    ini.makepyfile(test_sub=SUBTESTS)
    result = ini.runpytest_subprocess("--memscope-no-growth", "-p", "no:randomly")
    plain = ini.runpytest_subprocess("-p", "no:randomly")
    # the outcomes of a plain run, but for the one leak: each subtest is logged once
    expected = plain.parseoutcomes()
    expected["passed"] -= 1
    expected["failed"] = expected.get("failed", 0) + 1
    assert result.parseoutcomes() == expected, result.stdout.str()
    out = result.stdout.str()
    assert "test_sub.py::Values::test_leaks: " in out  # the memscope summary line
    assert "SubtestContext" not in out and "NodeId" not in out
    assert "SUBFAILED(i=2) test_sub.py::Values::test_one_subtest_fails" in out


def test_trivial_parametrized_tests_pass_with_the_default_rounds(pytester: pytest.Pytester) -> None:
    """Nothing grows: no malloc'd bytes either, with the defaults' long measuring on.

    ``mallinfo2()`` counts the free chunks of glibc's thread cache as in use and those of
    its fastbins as free: one test of a run like this read +32 malloc'd bytes on every
    one of 60 rounds, with no chunk allocated in a run left live (the runner's env var
    updates move them, so the file's name matters: it sets the variable's length). With
    fastbins off alone, one in 200 still did.
    """
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    pytester.makepyfile(
        test_t="""
import pytest

@pytest.mark.parametrize("n", range(200))
def test_one(n):
    assert n + 1 > n
"""
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--memscope-no-growth")
    assert result.parseoutcomes() == {"passed": 200}, result.stdout.str()
