"""Moved to tfxp.cli (one module per command group); kept for `python -m tfxp.pipeline.cli` and old imports."""

from tfxp.cli import main  # re-exported

if __name__ == "__main__":
    main()
