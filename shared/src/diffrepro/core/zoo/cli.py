"""``diffrepro zoo list | build [NAME...] | prune [NAME...] | path NAME | card NAME``."""

from __future__ import annotations

import argparse

from diffrepro.core.zoo import card, entries, get, path
from diffrepro.core.zoo.cache import built, ensure_built, prune


def add_zoo_command(commands: argparse._SubParsersAction) -> None:
    zoo = commands.add_parser("zoo", help="base models trained on embedded data (list, build, ...)")
    verbs = zoo.add_subparsers(dest="zoo_command", required=True, metavar="VERB")
    verbs.add_parser("list", help="every zoo entry, its cache key and whether it is built")
    verbs.choices["list"].set_defaults(func=_list)
    build = verbs.add_parser("build", help="build entries (default: all) if not cached")
    build.add_argument("names", nargs="*", metavar="NAME")
    build.add_argument("--force", action="store_true", help="rebuild even if cached")
    build.add_argument("--device", default="cpu", help="device to train on (default cpu)")
    build.set_defaults(func=_build)
    prune = verbs.add_parser("prune", help="remove builds whose config or recipe is outdated")
    prune.add_argument("names", nargs="*", metavar="NAME")
    prune.set_defaults(func=_prune)
    for verb, func, text in (
        ("path", _path, "print the folder of a built entry"),
        ("card", _card, "print the card of a built entry"),
    ):
        sub = verbs.add_parser(verb, help=text)
        sub.add_argument("name", metavar="NAME")
        sub.set_defaults(func=func)


def _list(args: argparse.Namespace) -> None:
    for name, entry in sorted(entries().items()):
        state = "built" if built(entry) else "not built"
        print(f"{name:<18} {entry.key()}  {state:<9}  {entry.summary}")


def _build(args: argparse.Namespace) -> None:
    names = args.names or sorted(entries())
    chosen = [get(n) for n in names]  # unknown names fail before anything is built
    for entry in chosen:
        print(ensure_built(entry, device=args.device, force=args.force))


def _prune(args: argparse.Namespace) -> None:
    names = args.names or sorted(entries())
    removed = prune([get(n) for n in names])
    for folder in removed:
        print(f"removed {folder}")
    if not removed:
        print("nothing to prune: every build is current")


def _path(args: argparse.Namespace) -> None:
    print(path(args.name, build=False))


def _card(args: argparse.Namespace) -> None:
    print(card(args.name))
