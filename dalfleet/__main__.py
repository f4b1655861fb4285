"""``python -m dalfleet``: the ``dalfleet`` command line."""

from __future__ import annotations

from dalfleet.cli import entry

if __name__ == "__main__":
    entry()
