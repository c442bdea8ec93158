"""The YAML presets (``carat-cli train --config NAME``), shipped as package data.

A package so that an installed carat finds them with ``importlib.resources``; see
``carat.config``.
"""
