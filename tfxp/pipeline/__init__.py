"""The taxi TFX pipeline: DAG, configuration, runners and the `tfxp` CLI.

Importing this package is cheap: TensorFlow and TFX load only where a command
needs them, so `tfxp --help` stays fast.
"""
