"""The verbs that look after the engine and the stores: ``build``, ``images base|lock``, ``clean`` and
``model``. Edge code like :mod:`harness.cli`, kept apart so the pipeline verbs read on one page."""

from __future__ import annotations

import argparse
import sys

from harness import __version__
from harness.errors import EXIT_OK, EXIT_RUN_FAILURE


def images_verb(args: argparse.Namespace) -> int:
    from harness.containers import base_image, engine, images, pins

    client = engine.connect()
    if args.verb == "clean":
        return _clean(client, args)
    if args.verb == "build":
        from harness.containers.llamacpp_image import build_llamacpp_image

        built = images.build_all(
            client,
            kit_version=__version__,
            python_exe=sys.executable,
            install_debootstrap=args.install_debootstrap,
            progress=print,
        )
        result, server = build_llamacpp_image(client, base_tag=built.base.tag, kit_version=__version__, progress=print)
        took = f"compiled in {server.build_s:.0f} s" if server.built_now else f"cached, {server.elapsed_s:.1f} s"
        print(f"{result.tag} (llama-server {server.llama_cpp_commit}, {took})")
        return EXIT_OK
    pinned = pins.load_pins()
    if args.action == "base":
        base = base_image.ensure_base_image(
            client, pinned, kit_version=__version__, install_debootstrap=args.install_debootstrap, progress=print
        )
        print(f"{base.tag} {base.image_id} ({'built' if base.built else 'present'})")
        return EXIT_OK
    lock = pins.resolve_pins(pinned, client=client)
    for name, locked in lock.images.items():
        print(f"{name}: {locked.pinned_reference}" + ("" if locked.digest else f" (unpinned: {locked.reason})"))
    if not lock.any_resolved:
        print(f"no registry answered: {pins.LOCK_PATH} records why per image; run this where one answers")
    return EXIT_OK


def model_verb(args: argparse.Namespace) -> int:
    from harness.digests import sha256_file
    from harness.run.llamacpp import ensure_tiny_model

    path = ensure_tiny_model(progress=print)
    print(f"{path} sha256 {sha256_file(path)} ({path.stat().st_size} bytes)")
    return EXIT_OK


def _clean(client: object, args: argparse.Namespace) -> int:
    """``clean``: orphaned stacks only, unless ``--all``; every project is listed with why it goes or stays."""
    from harness.containers import engine, leftovers

    label = f"{engine.LABEL_RUN_ID}={args.run_id}" if args.run_id else None
    report = leftovers.clean(client, everything=args.everything, dry_run=args.dry_run, label=label)
    verb = "would remove" if args.dry_run else "removed"
    why = {
        "running": "its controller is running",
        "other-host": "its controller is on another host",
        "unknown-controller": "made by a kit that did not name its controller (--all removes it)",
    }
    for project in report.removed:
        print(f"{verb} {project.name} ({project.state}): {', '.join(project.resources)}")
    for project in report.kept:
        who = f" {project.controller.key}" if project.controller else ""
        print(f"kept {project.name}: {why.get(project.state, project.state)}{who}")
    count = sum(len(p.resources) for p in report.removed)
    print(
        f"{verb} {count} resource(s) of {len(report.removed)} stack(s), kept {len(report.kept)} stack(s)"
        + (f"; could not remove: {', '.join(report.failed)}" if report.failed else "")
    )
    return EXIT_RUN_FAILURE if report.failed else EXIT_OK
