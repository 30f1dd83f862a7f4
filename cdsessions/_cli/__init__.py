"""The ``cdsessions`` command line (``python -m cdsessions``; the program is
:func:`cdsessions._cli.main.main`). Nothing in the library imports it: the library never
depends on its program.

- ``main``: the entry point and exit policy (signals, how each ending becomes an exit code);
- ``sessions``, ``costs``, ``fake``: the commands, each a :class:`~cdsessions._cli._parser.Command`
  (create, get, list, cancel, extend, wait; prices, reap; fake-server, demo);
- ``_parser``: what a command is, the option types, the parser built from the commands;
- ``_failures``: exit codes, and a failure value in a shell user's words, decided from its
  structured fields (``code``, ``status``, ``field``, ``why``), never from its message;
- ``_output``: printing, tables, JSON, money and hints, all escaped via
  :mod:`cdsessions._core.text`;
- ``_keyfile``: the API key from ``--api-key-file`` or the environment, and the client.
"""
