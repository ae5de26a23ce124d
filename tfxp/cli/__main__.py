"""`python -m tfxp.cli`: the same command line as the `tfxp` console script."""

from tfxp.cli import main

if __name__ == "__main__":
    main()
