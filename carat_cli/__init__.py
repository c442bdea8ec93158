"""carat-cli's commands, one module per command group; ``cli.py`` builds the root group.

Each module holds click commands that parse, call one pipeline/carat function and print (only
this layer prints). Options that several commands take are defined once, in
``carat_cli.options``; what every command needs besides (the one-line error, the progress bar,
the Examples block of its --help) is in ``carat_cli.common``.
"""
