"""One module per group of `assistant` subcommands; each exposes ``register(subparsers)``."""
