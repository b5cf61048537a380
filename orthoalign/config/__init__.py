"""Configs: dict helpers (`dicts`), the upgrade of saved runs (`upgrade`), the entry points' flag
checks (`flags`) and `validation.validate`, which composes each layer's own checks.

Import the submodule you need; this package imports none of them, so that `dicts` and `upgrade`
stay leaves that every layer can use.
"""
