"""Command-line verbs kept out of :mod:`cardioscar.cli`, one module each, named for the verb;
each has ``register(subparsers)`` (parser + handler), called by ``cli.build_parser``."""
