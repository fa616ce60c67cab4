"""`releasectl completion bash|zsh`: shell completion scripts generated from the argparse tree.

Place in the flow: beside the CLI; nothing else uses it. shtab walks the same parser that
parses the command line, so every subcommand, flag and choice completes without a second list
to keep in sync; path flags complete directories.
"""

from __future__ import annotations

import argparse

import shtab

DIRECTORY_FLAGS = ("--repo", "--home", "--workdir")


def script(parser: argparse.ArgumentParser, shell: str) -> str:
    for sub in _parsers(parser):
        for action in sub._actions:
            if any(flag in DIRECTORY_FLAGS for flag in action.option_strings) and action.metavar != "URL":
                action.complete = shtab.DIRECTORY  # type: ignore[attr-defined]
    text: str = shtab.complete(parser, shell=shell)
    return text if text.endswith("\n") else text + "\n"


def _parsers(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    found = [parser]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                found.extend(_parsers(sub))
    return found
