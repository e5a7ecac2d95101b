"""The bottom layer: what every other part of memscope stands on, and that imports none of them.

units (sizes, names, parsing), validate (argument checks), tracking (the weak registry of
named objects), proc / cgroup / libc / aio (one reader per platform fact), section and
collector (the vocabulary collectors speak), loop (a background loop), errors.
See docs/architecture.md.
"""
