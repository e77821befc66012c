"""One module per ``searchflow`` subcommand; see :data:`searchflow.cli.COMMANDS`."""
