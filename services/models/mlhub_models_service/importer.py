"""Import models from the old guide's layout: ``SRC/<model>/<version>/saved_model.pb``.

Run in the models container (the folder copied in, e.g. with
``docker compose cp ./old-models models:/tmp/import``):

    docker compose exec models mlhub-models-import /tmp/import --owner alice

Each version is validated like an upload; versions keep their order and get
the next version numbers of the model. Bad versions are reported and skipped.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile

from .archive import validate
from .store import NAME_RE, Store, StoreError


def import_tree(store: Store, src: str, owner: str, group: str | None = None) -> list[str]:
    report = []
    for name in sorted(os.listdir(src)):
        mdir = os.path.join(src, name)
        if not os.path.isdir(mdir):
            continue
        if not NAME_RE.fullmatch(name):
            report.append(f"skipped {name}: not a valid model name")
            continue
        versions = sorted(int(v) for v in os.listdir(mdir) if v.isdigit())
        for old in versions:
            vdir = os.path.join(mdir, str(old))
            if not os.path.isfile(os.path.join(vdir, "saved_model.pb")):
                report.append(f"skipped {name}/{old}: no saved_model.pb")
                continue
            try:
                signature = validate(vdir)
            except StoreError as e:
                report.append(f"skipped {name}/{old}: {e}")
                continue
            tmp = tempfile.mkdtemp(dir=store.staging, prefix="import-")
            copy = os.path.join(tmp, "m")
            shutil.copytree(vdir, copy)
            _, new = store.add_version(name, copy, owner, {"signature": signature, "imported_from": old}, group)
            shutil.rmtree(tmp, ignore_errors=True)
            report.append(f"imported {name}/{old} as {name} version {new}")
    return report


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="mlhub-models-import", description=__doc__.split("\n\n")[0])
    p.add_argument("src", help="folder in the old layout: <model>/<version>/saved_model.pb")
    p.add_argument("--owner", required=True, help="hub user who will own the imported models")
    p.add_argument("--group", help="hub group that may also manage them")
    p.add_argument("--root", default=os.environ.get("MLHUB_MODELS_ROOT", "/models"))
    args = p.parse_args(argv)
    if not os.path.isdir(args.src):
        print(f"mlhub-models-import: {args.src} is not a folder", file=sys.stderr)
        return 2
    lines = import_tree(Store(args.root), args.src, args.owner, args.group)
    print("\n".join(lines) or "nothing to import")
    return 1 if any(line.startswith("skipped") for line in lines) else 0


if __name__ == "__main__":
    sys.exit(main())
