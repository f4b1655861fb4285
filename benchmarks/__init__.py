"""dalfleet's benchmarks: every figure as a ratio to a floor measured in the same run.

``python -m benchmarks`` runs every row (see :mod:`benchmarks.rows`) and prints
figure, floor, ratio and target; ``python -m benchmarks scaling`` times deploy,
add_member, show and health from 10 to 1,000,000 members (see
:mod:`benchmarks.scaling`). Only public APIs are used: the functions of
:mod:`dalfleet.fleet` and the ``dalfleet`` command line. docs/performance.md
explains each row.
"""
