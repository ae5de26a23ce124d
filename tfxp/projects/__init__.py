"""Projects shipped with tfxp (package data): `taxi`, the default of `tfxp run`."""
