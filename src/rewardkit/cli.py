"""The `rewardkit` command: one entry point, one subcommand per module in `rewardkit/commands/`.

Thin by design: each subcommand module parses its flags into a config dataclass (lerobot's flag style,
`--dataset.root=...`, through draccus) and calls the library. A subcommand module defines `HELP` (one
line) and `main(argv) -> int`.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys

import rewardkit.commands as commands_package


def available_commands() -> dict[str, str]:
    """Subcommand name -> module path, for every module in rewardkit.commands."""
    found = {}
    for info in pkgutil.iter_modules(commands_package.__path__):
        if info.name.startswith("_"):
            continue
        found[info.name.replace("_", "-")] = f"rewardkit.commands.{info.name}"
    return dict(sorted(found.items()))


def _usage() -> str:
    lines = [
        "usage: rewardkit <command> [--flag=value ...]   (rewardkit <command> --help for its flags)",
        "",
        "commands:",
    ]
    for name, module_path in available_commands().items():
        module = importlib.import_module(module_path)
        lines.append(f"  {name:<14} {getattr(module, 'HELP', '')}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(_usage())
        return 0
    name, rest = argv[0], argv[1:]
    commands = available_commands()
    if name not in commands:
        print(f"rewardkit: unknown command '{name}'\n\n{_usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(commands[name])
    from rewardkit.cli_utils import run_command

    return run_command(module.main, rest)


if __name__ == "__main__":
    sys.exit(main())
