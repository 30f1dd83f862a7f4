"""The ``cdsessions`` command line (``python -m cdsessions``; the program is
:func:`cdsessions._cli.main.main`). Nothing in the library imports it: the library never
depends on its program."""
