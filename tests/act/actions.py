"""Stand-ins for the hosted runner's actions: setup-python, cache, the artifacts.

``ci.yml`` runs on GitHub's hosted runners with ``actions/setup-python``,
``actions/cache``, ``actions/upload-artifact`` and ``actions/download-artifact``.
The harness (tests/act_harness.py) cannot fetch them (nothing leaves 127.0.0.0/8),
so each pinned ref is mapped to a folder of tests/act holding an ``action.yml``
with the real one's inputs, outputs and ``runs`` (node20, the same main, post and
post-if: tests/act/contracts.json records the published ones and a test holds the
stand-ins to them) and a ``run.js`` that runs this file's phase of that action:
``python3 actions.py ACTION PHASE``. What each does is what the real one does on
a runner, against stores the harness names:

- ``setup-python``: the version asked for, from the interpreters the "image"
  holds (``$ACT_HARNESS_PYTHONS``), installed as a venv in
  ``$RUNNER_TOOL_CACHE/Python/VERSION/x64`` (pip works there: not externally
  managed) and put first on PATH; any other version fails with the real message.
- ``cache``: ``$ACT_HARNESS_CACHE`` is the repository's cache service. An entry is
  a ``tar`` of the paths, under its key and a version (the paths), restored by the
  exact key, else by the newest entry whose key starts with a restore key; the
  post step saves a new key when the job succeeded; keys are immutable.
- ``upload-artifact`` / ``download-artifact``: ``$ACT_HARNESS_ARTIFACTS`` is the
  workflow run's artifact storage. An artifact is a zip of the matched files,
  relative to their least common directory; a name is uploaded once per run.
- ``peaceiris/actions-gh-pages`` (``gh-pages``): ``publish_dir`` committed to the
  ``publish_branch`` of the repository the job checked out (``$ACT_HARNESS_ORIGIN``)
  and pushed there, with ``keep_files``, ``exclude_assets`` and ``.nojekyll``.

Standard library only: it runs with whatever ``python3`` the job has on PATH.
"""

from __future__ import annotations

import fcntl
import fnmatch
import glob
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
import uuid
import zipfile
from pathlib import Path

#: Where GitHub hosts the versions setup-python installs (its error names it).
MANIFEST = (
    "https://raw.githubusercontent.com/actions/python-versions/main/"
    "versions-manifest.json"
)
ARCH = "x64"
#: A repository's longest artifact retention (GitHub's default and maximum).
MAX_RETENTION = 90


class ActionFailed(Exception):
    """The action fails: ``core.setFailed(message)``."""


# -- @actions/core, as the real actions use it --------------------------------


def get_input(name: str, required: bool = False) -> str:
    """``core.getInput``: ``INPUT_NAME`` (spaces to ``_``, upper case), trimmed."""
    value = os.environ.get("INPUT_" + name.replace(" ", "_").upper(), "").strip()
    if required and not value:
        raise ActionFailed(f"Input required and not supplied: {name}")
    return value


def get_multiline(name: str, required: bool = False) -> list[str]:
    """``core.getMultilineInput``: one value per non-empty line."""
    lines = [line.strip() for line in get_input(name, required).splitlines()]
    return [line for line in lines if line]


def get_bool(name: str) -> bool:
    """``core.getBooleanInput``: YAML 1.2 booleans only, else a TypeError's text."""
    value = get_input(name)
    if value in ("true", "True", "TRUE"):
        return True
    if value in ("false", "False", "FALSE", ""):
        return False
    raise ActionFailed(
        f'Input does not meet YAML 1.2 "Core Schema" specification: {name}\n'
        "Support boolean input list: `true | True | TRUE | false | False | FALSE`"
    )


def _append(variable: str, name: str, value: str) -> None:
    """Write ``name<<delimiter`` ``value`` to the runner's file ``$VARIABLE``."""
    delimiter = f"ghadelimiter_{uuid.uuid4()}"
    with open(os.environ[variable], "a", encoding="utf-8") as handle:
        handle.write(f"{name}<<{delimiter}\n{value}\n{delimiter}\n")


def set_output(name: str, value: object) -> None:
    """``core.setOutput``."""
    _append("GITHUB_OUTPUT", name, str(value))


def save_state(name: str, value: str) -> None:
    """``core.saveState``: read back by the post step as ``STATE_name``."""
    _append("GITHUB_STATE", name, value)


def export_variable(name: str, value: str) -> None:
    """``core.exportVariable``: for this step's process and the next steps."""
    os.environ[name] = value
    _append("GITHUB_ENV", name, value)


def add_path(directory: str) -> None:
    """``core.addPath``: first on PATH for the next steps."""
    with open(os.environ["GITHUB_PATH"], "a", encoding="utf-8") as handle:
        handle.write(directory + "\n")


def info(message: str) -> None:
    """``core.info``."""
    print(message, flush=True)


def warning(message: str) -> None:
    """``core.warning``: an annotation."""
    print(f"::warning::{message}", flush=True)


def log_warning(message: str) -> None:
    """actions/cache's ``utils.logWarning``: a plain line, no annotation."""
    info(f"[warning]{message}")


def lenient_bool(name: str) -> bool:
    """actions/cache's ``getInputAsBool``: ``'true'`` in any case, else false."""
    return get_input(name).lower() == "true"


def store(variable: str) -> Path:
    """The harness's store named by ``$VARIABLE`` (a clear failure without it)."""
    value = os.environ.get(variable)
    if not value:
        raise ActionFailed(f"{variable} is not set: run this action under the harness")
    path = Path(value)
    path.mkdir(parents=True, exist_ok=True)
    return path


def workspace() -> Path:
    """``$GITHUB_WORKSPACE``: where relative paths start."""
    return Path(os.environ.get("GITHUB_WORKSPACE") or os.getcwd())


def resolve(pattern: str) -> str:
    """A path input as the actions read it: ``~`` is HOME, relative is the workspace."""
    expanded = os.path.expanduser(pattern)
    return expanded if os.path.isabs(expanded) else str(workspace() / expanded)


# -- actions/setup-python -----------------------------------------------------


def python_version(executable: str) -> str:
    """The full version of an interpreter, e.g. ``3.11.7``."""
    return subprocess.run(
        [executable, "-c", "import platform; print(platform.python_version())"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()


def matches(spec: str, version: str) -> bool:
    """Whether ``version`` satisfies a setup-python spec: ``3``, ``3.11``, ``3.x``..."""
    wanted = spec.strip().removesuffix(".x").removesuffix(".*").split(".")
    have = version.split(".")
    return have[: len(wanted)] == wanted


def os_name() -> str:
    """The OS as setup-python names it (``lsb_release -i -r``), e.g. ``Debian 12``."""
    fields = {}
    for line in Path("/etc/os-release").read_text().splitlines():
        name, _, value = line.partition("=")
        fields[name] = value.strip('"')
    system = fields.get("NAME", "Linux").split()[0]
    return f"{system} {fields.get('VERSION_ID', '')}".strip()


def _newest(versions: list[tuple[str, str]]) -> tuple[str, str]:
    return max(versions, key=lambda item: [int(p) for p in item[0].split(".")])


def setup_python() -> None:
    """Install the version asked for from the image's interpreters, put it on PATH."""
    spec = get_input("python-version")
    version_file = get_input("python-version-file")
    if not spec and version_file:
        lines = Path(resolve(version_file)).read_text().split()
        spec = lines[0] if lines else ""
    if get_input("cache"):
        raise ActionFailed("this stand-in does not cache pip, pipenv or poetry")
    architecture = get_input("architecture") or ARCH
    if not spec:
        info(
            "The `python-version` input is not set.  The version of Python "
            "currently in `PATH` will be used."
        )
        return
    found = [
        (python_version(exe), exe)
        for exe in os.environ.get("ACT_HARNESS_PYTHONS", "").split(os.pathsep)
        if exe
    ]
    fitting = [item for item in found if matches(spec, item[0])]
    if architecture != ARCH or not fitting:
        raise ActionFailed(
            f"The version '{spec}' with architecture '{architecture}' was not found "
            f"for {os_name()}.\nThe list of all available versions can be found "
            f"here: {MANIFEST}"
        )
    version, executable = _newest(fitting)
    tool_cache = Path(os.environ.get("RUNNER_TOOL_CACHE") or store("RUNNER_TEMP"))
    install = tool_cache / "Python" / version / architecture
    complete = install.parent / f"{architecture}.complete"
    install.parent.mkdir(parents=True, exist_ok=True)
    # Jobs at once install once; a half-made install (no marker) is made again.
    # In place: a venv's scripts name the directory they were made in.
    with open(install.parent / f"{architecture}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not complete.exists():
            info(f"Installing Python {version} into the tool cache: {install}")
            shutil.rmtree(install, ignore_errors=True)
            subprocess.run([executable, "-m", "venv", str(install)], check=True)
            complete.touch()
    if get_bool("update-environment") or not get_input("update-environment"):
        for name in ("pythonLocation", "Python_ROOT_DIR", "Python2_ROOT_DIR"):
            export_variable(name, str(install))
        export_variable("Python3_ROOT_DIR", str(install))
        export_variable("PKG_CONFIG_PATH", str(install / "lib" / "pkgconfig"))
        library = str(install / "lib")
        paths = os.environ.get("LD_LIBRARY_PATH", "")
        if library not in paths.split(os.pathsep):
            export_variable(
                "LD_LIBRARY_PATH", os.pathsep.join(filter(None, [library, paths]))
            )
        add_path(str(install))
        add_path(str(install / "bin"))
    info(f"Successfully set up CPython ({version})")
    set_output("python-version", version)
    set_output("python-path", str(install / "bin" / "python"))


# -- actions/cache ------------------------------------------------------------


def cache_version(paths: list[str]) -> str:
    """The entry's version: its paths and the compression (as the real one hashes)."""
    return hashlib.sha256("|".join([*paths, "tar"]).encode()).hexdigest()


def _entries(version: str) -> list[dict[str, object]]:
    """The cache service's entries of ``version``, newest first."""
    entries = []
    for meta in store("ACT_HARNESS_CACHE").glob("*/entry.json"):
        if meta.parent.suffix == ".part":
            continue  # being saved
        entry = json.loads(meta.read_text())
        if entry["version"] == version:
            entries.append({**entry, "dir": str(meta.parent)})
    return sorted(entries, key=lambda e: -float(str(e["created"])))


def find_entry(keys: list[str], version: str) -> dict[str, object] | None:
    """The entry the service gives: the primary key exactly, else by restore key.

    Each key in turn: an exact match, else the newest entry whose key starts with
    it (GitHub's documented matching).
    """
    entries = _entries(version)
    for key in keys:
        exact = [e for e in entries if e["key"] == key]
        prefixed = [e for e in entries if str(e["key"]).startswith(key)]
        if exact or prefixed:
            return (exact or prefixed)[0]
    return None


def _check_key(key: str) -> None:
    if len(key) > 512:
        raise ActionFailed(
            f"Key Validation Error: {key} cannot be larger than 512 characters."
        )
    if "," in key:
        raise ActionFailed(f"Key Validation Error: {key} cannot contain commas.")


def cache_restore() -> None:
    """The main step: restore the paths from the best entry; set the outputs."""
    paths = get_multiline("path", required=True)
    primary = get_input("key", required=True)
    keys = [primary, *get_multiline("restore-keys")]
    if len(keys) > 10:
        raise ActionFailed("Key Validation Error: Keys are limited to a maximum of 10.")
    for key in keys:
        _check_key(key)
    save_state("CACHE_KEY", primary)
    entry = find_entry(keys, cache_version(paths))
    if entry is None:
        if lenient_bool("fail-on-cache-miss"):
            raise ActionFailed(
                "Failed to restore cache entry. Exiting as fail-on-cache-miss is "
                f"set. Input key: {primary}"
            )
        info(f"Cache not found for input keys: {', '.join(keys)}")
        return
    matched = str(entry["key"])
    if not lenient_bool("lookup-only"):
        archive = Path(str(entry["dir"])) / "cache.tar"
        size = archive.stat().st_size / 2**20
        info(f"Cache Size: ~{size:.0f} MB ({archive.stat().st_size} B)")
        untar = ["tar", "-xf", str(archive), "-P", "-C", str(workspace())]
        if subprocess.run(untar).returncode != 0:
            # As the real one: a restore that fails is a warning, the job goes on.
            log_warning(f"Failed to restore: tar exited non-zero for key {matched}")
            return
    save_state("CACHE_RESULT", matched)
    # Case aside, as the real one compares (localeCompare, sensitivity 'accent').
    set_output("cache-hit", str(matched.lower() == primary.lower()).lower())
    verb = "found and can be restored" if lenient_bool("lookup-only") else "restored"
    info(f"Cache {verb} from key: {matched}")


def _relative(path: str) -> str:
    """A path as tar stores it: relative to the workspace when inside it."""
    try:
        return str(Path(path).relative_to(workspace()))
    except ValueError:
        return path


def cache_save() -> None:
    """The post step (``post-if: success()``): save the paths under the key."""
    primary = os.environ.get("STATE_CACHE_KEY", "")
    if not primary:
        log_warning("Key is not specified.")
        return
    if os.environ.get("STATE_CACHE_RESULT") == primary:
        info(f"Cache hit occurred on the primary key {primary}, not saving cache.")
        return
    paths = get_multiline("path", required=True)
    found = sorted({m for p in paths for m in glob.glob(resolve(p), recursive=True)})
    if not found:
        log_warning(
            "Path Validation Error: Path(s) specified in the action for caching "
            "do(es) not exist, hence no cache is being saved."
        )
        return
    version = cache_version(paths)
    names = [_relative(p) for p in found]
    try:
        save_entry(store("ACT_HARNESS_CACHE"), primary, version, names, workspace())
    except FileExistsError:
        log_warning(
            f"Failed to save: Unable to reserve cache with key {primary}, another "
            "job may be creating this cache."
        )
        return
    except subprocess.CalledProcessError as error:
        log_warning(f"Failed to save: {error}")
        return
    info(f"Cache saved with key: {primary}")


def save_entry(
    service: Path,
    key: str,
    version: str,
    names: list[str],
    directory: Path,
    transform: str = "",
) -> Path:
    """Store ``names`` (relative to ``directory``, or absolute) as a cache entry.

    ``transform`` is a GNU tar ``--transform`` expression for the stored names:
    how the harness seeds an entry a previous run would have saved from another
    home (see tests/act_harness.py ``Runner.seed_cache``).

    Raises:
        FileExistsError: The key (of this version) is taken: keys are immutable.
    """
    name = hashlib.sha256(f"{key}\0{version}".encode()).hexdigest()[:32]
    done = service / name
    if done.exists():
        raise FileExistsError(done)
    service.mkdir(parents=True, exist_ok=True)
    # The reservation: one saver gets it, the others are told the key is taken.
    entry = service / f"{name}.part"
    entry.mkdir()
    manifest = entry / "manifest.txt"
    manifest.write_text("\n".join(names) + "\n")
    tar = ["tar", "-cf", str(entry / "cache.tar"), "-P", "-C", str(directory)]
    tar += [f"--transform={transform}"] if transform else []
    try:
        subprocess.run([*tar, "--files-from", str(manifest)], check=True)
    except subprocess.CalledProcessError:
        shutil.rmtree(entry, ignore_errors=True)
        raise
    meta = {"key": key, "version": version, "created": time.time()}
    (entry / "entry.json").write_text(json.dumps(meta))
    entry.rename(done)
    return done


# -- actions/upload-artifact, actions/download-artifact ------------------------

HIDDEN = re.compile(r"(^|/)\.")


def search(patterns: list[str], hidden: bool) -> tuple[list[Path], Path | None]:
    """The files the path patterns match (``!`` excludes) and their root directory.

    The root is the least common directory of the patterns' literal parts, as
    upload-artifact computes it: the files are stored relative to it.
    """
    included: set[Path] = set()
    excluded: set[Path] = set()
    roots: list[str] = []
    for pattern in patterns:
        negate = pattern.startswith("!")
        full = resolve(pattern[1:] if negate else pattern)
        matched = set()
        for hit in glob.glob(full, recursive=True, include_hidden=hidden):
            path = Path(hit)
            tree = path.rglob("*") if path.is_dir() else [path]
            matched |= {p for p in tree if p.is_file()}
        if negate:
            excluded |= matched
            continue
        included |= matched
        roots.append(search_root(full))
    files = sorted(included - excluded)
    if not files:
        return [], None
    root = Path(os.path.commonpath(roots))
    if not hidden:
        files = [f for f in files if not HIDDEN.search(str(f.relative_to(root)))]
    return (files, root) if files else ([], None)


def search_root(pattern: str) -> str:
    """Where a pattern's search starts (``@actions/glob``'s search path).

    The path segments before the first one holding a glob character; a literal
    file's directory.
    """
    parts = Path(pattern).parts
    literal = next((i for i, p in enumerate(parts) if re.search(r"[*?\[]", p)), None)
    if literal is not None:
        return str(Path(*parts[:literal]))
    return pattern.rstrip("/") if os.path.isdir(pattern) else os.path.dirname(pattern)


def upload_artifact() -> None:
    """Zip the matched files into the run's artifact storage under ``name``."""
    name = get_input("name") or "artifact"
    patterns = get_multiline("path", required=True)
    behaviour = get_input("if-no-files-found") or "warn"
    if behaviour not in ("warn", "error", "ignore"):
        raise ActionFailed(
            f"Unrecognized if-no-files-found input. Provided: {behaviour}. "
            "Available options: warn,error,ignore"
        )
    days = get_input("retention-days")
    if days and not days.isdigit():
        raise ActionFailed(f"Invalid retention-days: {days}")
    if days and int(days) > MAX_RETENTION:
        warning(
            f"Retention days cannot be greater than the maximum allowed retention "
            f"set within the repository. Using {MAX_RETENTION} instead."
        )
    level = int(get_input("compression-level") or 6)
    files, root = search(patterns, get_bool("include-hidden-files"))
    if not files or root is None:
        message = (
            f"No files were found with the provided path: {', '.join(patterns)}. "
            "No artifacts will be uploaded."
        )
        if behaviour == "error":
            raise ActionFailed(message)
        (warning if behaviour == "warn" else info)(message)
        return
    storage = store("ACT_HARNESS_ARTIFACTS")
    target = storage / f"{name}.zip"
    if target.exists() and not get_bool("overwrite"):
        raise ActionFailed(
            "Failed to CreateArtifact: Received non-retryable error: Failed request: "
            "(409) Conflict: an artifact with this name already exists on the "
            "workflow run"
        )
    info(f"With the provided path, there will be {len(files)} files uploaded")
    scratch = storage / f".{name}.{uuid.uuid4().hex}"
    method = zipfile.ZIP_DEFLATED if level else zipfile.ZIP_STORED
    with zipfile.ZipFile(
        scratch, "w", method, compresslevel=level or None, strict_timestamps=False
    ) as zipped:
        for path in files:
            zipped.write(path, str(path.relative_to(root)))
    os.replace(scratch, target)
    digest = hashlib.sha256(target.read_bytes()).hexdigest()
    artifact_id = int(hashlib.sha256(name.encode()).hexdigest()[:8], 16)
    server = os.environ.get("GITHUB_SERVER_URL", "https://github.com")
    run = os.environ.get("GITHUB_RUN_ID", "1")
    repo = os.environ.get("GITHUB_REPOSITORY", "")
    info(
        f"Artifact {name} has been successfully uploaded! Final size is "
        f"{target.stat().st_size} bytes. Artifact ID is {artifact_id}"
    )
    set_output("artifact-id", artifact_id)
    set_output(
        "artifact-url", f"{server}/{repo}/actions/runs/{run}/artifacts/{artifact_id}"
    )
    set_output("artifact-digest", digest)


def download_artifact() -> None:
    """Unzip artifacts of this run: one into ``path``, or each into ``path/NAME``."""
    if get_input("github-token") or get_input("artifact-ids"):
        raise ActionFailed("this stand-in downloads by name or pattern, this run only")
    name = get_input("name")
    path = Path(resolve(get_input("path") or "."))
    storage = store("ACT_HARNESS_ARTIFACTS")
    if name:
        archive = storage / f"{name}.zip"
        if not archive.exists():
            raise ActionFailed(
                f"Unable to download artifact(s): Artifact not found for name: {name}\n"
                "        Please ensure that your artifact is not expired and the "
                "artifact was uploaded using a compatible version of "
                "toolkit/upload-artifact.\n        For more information, visit the "
                "GitHub Artifacts FAQ: https://github.com/actions/toolkit/blob/main/"
                "packages/artifact/docs/faq.md"
            )
        chosen = {name: archive}
    else:
        pattern = get_input("pattern") or "*"
        chosen = {
            a.stem: a
            for a in sorted(storage.glob("*.zip"))
            if fnmatch.fnmatch(a.stem, pattern)
        }
    merge = get_bool("merge-multiple") or bool(name)
    for artifact, archive in chosen.items():
        destination = path if merge else path / artifact
        destination.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(archive) as zipped:
            zipped.extractall(destination)
        info(f"Artifact download completed successfully: {artifact} -> {destination}")
    info(f"Total of {len(chosen)} artifact(s) downloaded")
    set_output("download-path", str(path))
    info("Download artifact has finished successfully")


# -- peaceiris/actions-gh-pages ------------------------------------------------

#: Its inputs this stand-in does not do (another repository, keys, tags).
GH_PAGES_REFUSED = (
    "deploy_key",
    "personal_token",
    "external_repository",
    "tag_name",
    "cname",
)


def git(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run git in ``cwd``, its output shown as the action shows it."""
    return subprocess.run(["git", *args], cwd=cwd, text=True)


def gh_pages() -> None:
    """Publish ``publish_dir`` to the origin's ``publish_branch``, as the real one.

    The origin is the repository the job checked out (``$ACT_HARNESS_ORIGIN``),
    where the real action pushes to ``github.com/REPOSITORY`` with the token.
    """
    for name in GH_PAGES_REFUSED:
        if get_input(name):
            raise ActionFailed(f"this stand-in does not do {name}")
    if get_bool("force_orphan"):
        raise ActionFailed("this stand-in does not do force_orphan")
    if not get_input("github_token"):
        raise ActionFailed("not found deploy key or tokens")
    origin = os.environ.get("ACT_HARNESS_ORIGIN", "")
    branch = get_input("publish_branch") or "gh-pages"
    publish = Path(resolve(get_input("publish_dir") or "public"))
    work = store("RUNNER_TEMP") / f"actions_github_pages_{int(time.time() * 1000)}"
    clone = ["clone", "--depth=1", "--single-branch", "--branch", branch, origin]
    if git(*clone, str(work), cwd=work.parent).returncode == 0:
        if not get_bool("keep_files"):
            info(f"[INFO] clean up {work}")
            git("rm", "-r", "-q", "--ignore-unmatch", "*", cwd=work)
        else:
            info("[INFO] Keep existing files")
    else:
        info(f"[INFO] first deployment, create new branch {branch}")
        work.mkdir(parents=True)
        git("init", "-q", cwd=work)
        git("checkout", "-q", "--orphan", branch, cwd=work)
    destination = work / get_input("destination_dir")
    info(f"[INFO] copy {publish} to {destination}")
    shutil.copytree(
        publish, destination, ignore=shutil.ignore_patterns(".git"), dirs_exist_ok=True
    )
    for pattern in filter(None, get_input("exclude_assets").split(",")):
        for path in glob.glob(str(destination / pattern)):
            info(f"[INFO] delete {path}")
            shutil.rmtree(path) if os.path.isdir(path) else os.remove(path)
    if not (get_bool("enable_jekyll") or get_bool("disable_nojekyll")):
        (work / ".nojekyll").touch()
    actor = os.environ.get("GITHUB_ACTOR", "github-actions")
    git("config", "user.name", get_input("user_name") or actor, cwd=work)
    email = get_input("user_email") or f"{actor}@users.noreply.github.com"
    git("config", "user.email", email, cwd=work)
    git("add", "--all", cwd=work)
    sha = os.environ.get("GITHUB_SHA", "")
    message = get_input("full_commit_message") or (
        f"{get_input('commit_message') or 'deploy:'} {sha}"
    )
    empty = ["--allow-empty"] if get_bool("allow_empty_commit") else []
    if git("commit", "-q", *empty, "-m", message, cwd=work).returncode != 0:
        info("[INFO] skip commit")
    if git("push", "-q", origin, f"HEAD:refs/heads/{branch}", cwd=work).returncode:
        raise ActionFailed("The process '/usr/bin/git' failed with exit code 1")
    info("[INFO] Action successfully completed")


def nothing() -> None:
    """setup-python's post step: it saves a pip cache only, which is refused."""


#: Each action's main and post step (None: the action has none).
ACTIONS = {
    "setup-python": (setup_python, nothing),
    "cache": (cache_restore, cache_save),
    "upload-artifact": (upload_artifact, None),
    "download-artifact": (download_artifact, None),
    "gh-pages": (gh_pages, None),
}


def main(argv: list[str]) -> int:
    """``actions.py ACTION``: run one stand-in; a failure is ``::error::`` and 1."""
    if len(argv) != 1 or argv[0] not in ACTIONS:
        print(f"usage: actions.py {{{','.join(ACTIONS)}}}", file=sys.stderr)
        return 2
    main_step, post_step = ACTIONS[argv[0]]
    # As @actions/core's actions tell their post step from their main step.
    post = os.environ.get("STATE_isPost") == "true"
    try:
        if post and post_step is not None:
            post_step()
        else:
            if post_step is not None:
                save_state("isPost", "true")
            main_step()
    except ActionFailed as failed:
        print(f"::error::{failed}", flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
