"""One module per `rewardkit` subcommand (module `foo_bar` is `rewardkit foo-bar`)."""
