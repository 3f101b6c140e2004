"""Images: build contexts hashed by content, and the named images of `images/`.

A named image is a folder with a Dockerfile and an `image.yaml`:
`tag`, `description`, optional `base` (passed as build arg BASE), `offline_base`
(`debootstrap`: how to make that base locally when it cannot be pulled),
`network` (for RUN steps) and `host_files` (host files copied into the context).
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
import shutil
import tarfile
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from glmtui import paths
from glmtui.docker.interface import ContainerEngine
from glmtui.errors import BadInput, GlmtuiError, NotFound, did_you_mean

Progress = Callable[[str], None]
LOCAL_DEBIAN = ("glmtui/debian", "bookworm")


@dataclass(frozen=True)
class ImageDefinition:
    name: str
    folder: Path
    tag: str
    description: str = ""
    base: str | None = None
    offline_base: str | None = None
    network: str | None = None
    host_files: Mapping[str, str] = field(default_factory=dict)


@dataclass
class BuildResult:
    image: str  # repo:hash tag
    cached: bool
    notes: list[str] = field(default_factory=list)


def definitions(folder: Path | None = None) -> dict[str, ImageDefinition]:
    folder = folder or paths.images_dir()
    found: dict[str, ImageDefinition] = {}
    for manifest in sorted(folder.glob("*/image.yaml")):
        data = yaml.safe_load(manifest.read_text()) or {}
        name = manifest.parent.name
        found[name] = ImageDefinition(
            name=name,
            folder=manifest.parent,
            tag=data["tag"],
            description=data.get("description", ""),
            base=data.get("base"),
            offline_base=data.get("offline_base"),
            network=data.get("network"),
            host_files=data.get("host_files") or {},
        )
    return found


def build_context(
    folder: Path, *, extra_files: Mapping[str, Path] | None = None, salt: str = ""
) -> tuple[bytes, str]:
    """A tar of `folder` (plus extra files) and a hash of everything that shapes the image.
    A link in `folder` to a file outside it is refused: it would send that host file to the engine."""
    digest = hashlib.sha256(salt.encode())
    buffer = io.BytesIO()
    entries = [(p.relative_to(folder).as_posix(), p) for p in sorted(folder.rglob("*")) if p.is_file()]
    inside = folder.resolve()
    for name, source in entries:
        target = source.resolve()
        if target != inside and inside not in target.parents:
            raise BadInput(f"the build context {folder} holds {name}, a link to {target} outside it",
                           hint="copy the file into the context instead of linking to it")
    entries += sorted((name, Path(source)) for name, source in (extra_files or {}).items())
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for name, source in entries:
            if name == "image.yaml":
                continue
            try:
                data = source.read_bytes()
                mode = source.stat().st_mode & 0o777
            except OSError as err:
                raise BadInput(f"cannot read {source} for the image build: {err.strerror}") from None
            digest.update(f"{name}\0{mode}\0{len(data)}\0".encode())
            digest.update(data)
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), mode
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue(), digest.hexdigest()[:12]


async def build_folder(
    engine: ContainerEngine,
    folder: Path,
    repo: str,
    *,
    dockerfile: str = "Dockerfile",
    args: Mapping[str, str] | None = None,
    network: str | None = None,
    extra_files: Mapping[str, Path] | None = None,
    proxy: Mapping[str, str] | None = None,
    on_progress: Progress | None = None,
) -> BuildResult:
    """Build `folder` as `repo:<content hash>` (and `repo:latest`), unless that hash is built already.
    `proxy` (the user's: {http, https, no_proxy}) reaches RUN steps as Docker's proxy build
    arguments, and is not part of the hash."""
    if not (folder / dockerfile).is_file():
        raise NotFound(f"no {dockerfile} in {folder}")
    salt = f"{dockerfile}\0{sorted((args or {}).items())}"
    context, content_hash = build_context(folder, extra_files=extra_files, salt=salt)
    image = f"{repo}:{content_hash}"
    if await engine.image_exists(image):
        await engine.tag_image(image, repo, "latest")
        return BuildResult(image, cached=True)
    from glmtui.docker.passthrough import build_arguments

    await engine.build_image(
        context, [image, f"{repo}:latest"], dockerfile=dockerfile, args={**build_arguments(proxy or {}), **(args or {})},
        network=network, on_progress=on_progress,
    )
    return BuildResult(image, cached=False)


def named(names: list[str]) -> list[ImageDefinition]:
    """The definitions of `names` (every one when empty); an unknown name is a clear error."""
    known = definitions()
    for name in names:
        if name not in known:
            raise NotFound(f"no image definition named {name!r}{did_you_mean(name, known)}", hint=f"known: {', '.join(known)}")
    return [known[name] for name in names] if names else list(known.values())


async def build_named(engine: ContainerEngine, name: str, *, proxy: Mapping[str, str] | None = None,
                      on_progress: Progress | None = None) -> BuildResult:
    definition = named([name])[0]
    notes: list[str] = []
    args: dict[str, str] = {}
    if definition.base:
        args["BASE"] = await _base_image(engine, definition, notes, on_progress)
    extra = {target: Path(source) for target, source in definition.host_files.items()}
    for target, source in extra.items():
        if not source.is_file():
            raise NotFound(f"image {name!r} needs {source} from the host for {target}", hint="install busybox-static")
    result = await build_folder(
        engine, definition.folder, definition.tag, args=args, network=definition.network,
        extra_files=extra, proxy=proxy, on_progress=on_progress,
    )
    result.notes[:0] = notes
    return result


async def _base_image(engine: ContainerEngine, definition: ImageDefinition, notes: list[str], on_progress: Progress | None) -> str:
    assert definition.base
    try:
        await engine.ensure_image(definition.base, on_progress=on_progress)
        return definition.base
    except NotFound as err:
        if definition.offline_base != "debootstrap":
            raise
        local = ":".join(LOCAL_DEBIAN)
        if not await engine.image_exists(local):
            notes.append(f"{definition.base} could not be pulled ({err.message.split(': ', 1)[-1]})")
            await make_debian_base(engine, on_progress=on_progress)
            notes.append(f"made {local} locally with debootstrap and docker import")
        else:
            notes.append(f"{definition.base} could not be pulled; used the local {local}")
        return local


async def make_debian_base(engine: ContainerEngine, *, suite: str = "bookworm", on_progress: Progress | None = None) -> str:
    """debootstrap a minimal Debian and import it as glmtui/debian:<suite>."""
    if shutil.which("debootstrap") is None:
        raise GlmtuiError(
            "cannot make a Debian base image: debootstrap is not installed",
            hint="apt-get install -y debootstrap, or make debian:bookworm-slim available to Docker",
        )
    if os.geteuid() != 0:
        raise GlmtuiError("cannot make a Debian base image: debootstrap needs root", hint="run the build as root")
    with tempfile.TemporaryDirectory(prefix="glmtui-debootstrap-", dir="/var/tmp") as workdir:
        root = Path(workdir) / "root"
        await _run(["debootstrap", "--variant=minbase", suite, str(root)], on_progress)
        tar_path = Path(workdir) / "root.tar"
        await _run(["tar", "-C", str(root), "-cf", str(tar_path), "."], on_progress)
        await engine.import_image(tar_path, LOCAL_DEBIAN[0], suite)
    return f"{LOCAL_DEBIAN[0]}:{suite}"


async def _run(argv: list[str], on_progress: Progress | None) -> None:
    process = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    assert process.stdout is not None
    tail: list[str] = []
    async for raw in process.stdout:
        line = raw.decode(errors="replace").rstrip()
        tail = (tail + [line])[-5:]
        if on_progress:
            on_progress(line)
    if await process.wait() != 0:
        raise GlmtuiError(f"{argv[0]} failed: {' | '.join(tail) or 'no output'}")
