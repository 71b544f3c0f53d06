"""Check the built distributions: the sdist holds every tracked file of tests/, docs/,
bench/ and sample_site/ (so its suite runs), the wheel holds the package, its typing
marker and its JavaScript and nothing else, and both carry the one version and the
licence.

Usage: python .ci/check_dist.py DIST_DIR
"""

import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SDIST_TREES = ("tests/", "docs/", "bench/", "sample_site/", "syncbind/")


def tracked() -> set[str]:
    out = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, check=True, capture_output=True, text=True
    ).stdout
    return {path for path in out.splitlines() if (ROOT / path).is_file()}


def main(dist: Path) -> list[str]:
    sys.path.insert(0, str(ROOT))
    from syncbind import __version__

    problems = []
    sdists = list(dist.glob("syncbind-*.tar.gz"))
    wheels = list(dist.glob("syncbind-*.whl"))
    if len(sdists) != 1 or len(wheels) != 1:
        return [f"expected one sdist and one wheel in {dist}, found {sdists + wheels}"]
    sdist, wheel = sdists[0], wheels[0]
    for built in (sdist, wheel):
        if f"-{__version__}" not in built.name:
            problems.append(f"{built.name} does not carry version {__version__}")

    with tarfile.open(sdist) as archive:
        prefix = f"syncbind-{__version__}/"
        shipped = {name.removeprefix(prefix) for name in archive.getnames()}
    wanted = {path for path in tracked() if path.startswith(SDIST_TREES)}
    wanted |= {"LICENSE", "README.md", "CHANGELOG.md", "pyproject.toml", "Makefile"}
    problems += [f"sdist lacks {path}" for path in sorted(wanted - shipped)]
    problems += [f"sdist ships a build artefact: {p}" for p in shipped if "__pycache__" in p]

    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        metadata = next(
            archive.read(n).decode() for n in names if n.endswith(".dist-info/METADATA")
        )
    top = {name.split("/")[0] for name in names}
    extra = {t for t in top if t != "syncbind" and not t.endswith(".dist-info")}
    problems += [f"wheel ships {t}/ beside the package" for t in sorted(extra)]
    for needed in ("syncbind/py.typed", "syncbind/static/syncbind/syncbind.js"):
        if needed not in names:
            problems.append(f"wheel lacks {needed}")
    if not any(n.endswith(".dist-info/licenses/LICENSE") for n in names):
        problems.append("wheel lacks its LICENSE")
    if "License-Expression: BSD-3-Clause" not in metadata:
        problems.append("wheel metadata has no License-Expression")
    for extra_name in ("redis", "drf", "postgres", "server"):
        if f"Provides-Extra: {extra_name}" not in metadata:
            problems.append(f"wheel metadata lacks the {extra_name} extra")
    for dev_only in ("test", "bench"):
        if f"Provides-Extra: {dev_only}\n" in metadata:
            problems.append(f"the {dev_only} tools are an extra users would install")
    return problems


if __name__ == "__main__":
    found = main(Path(sys.argv[1]))
    for problem in found:
        print(problem)
    if found:
        sys.exit(1)
    print("dist: sdist and wheel complete")
