"""Subcommands of `rivya-hooks`, grouped by what they work on."""
