"""The wire contract: generated code is current, buf lint passes, and every element is documented."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from google.protobuf import descriptor_pb2

ROOT = Path(__file__).resolve().parent.parent
PROTO = "jamservice/v1/jam.proto"
GENERATED = ("jam_pb2.py", "jam_pb2_grpc.py", "jam_pb2.pyi")

# Field numbers inside descriptor.proto, which make up SourceCodeInfo location paths.
FILE_MESSAGE, FILE_ENUM, FILE_SERVICE = 4, 5, 6
MESSAGE_FIELD, MESSAGE_NESTED, MESSAGE_ENUM, MESSAGE_ONEOF = 2, 3, 4, 8
ENUM_VALUE = 2
SERVICE_METHOD = 2


def protoc(*args: str) -> None:
    """Run grpc_tools' protoc on the project's proto, failing with its output."""
    command = [sys.executable, "-m", "grpc_tools.protoc", "-Iprotos", *args, PROTO]
    result = subprocess.run(command, check=False, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, f"protoc failed:\n{result.stdout}{result.stderr}"


def test_committed_generated_code_matches_the_proto(tmp_path: Path) -> None:
    protoc(f"--python_out={tmp_path}", f"--grpc_python_out={tmp_path}", f"--pyi_out={tmp_path}")
    for name in GENERATED:
        fresh = (tmp_path / "jamservice" / "v1" / name).read_bytes()
        committed = (ROOT / "jamservice" / "v1" / name).read_bytes()
        assert fresh == committed, f"jamservice/v1/{name} is stale: run `make proto`"


def test_buf_lint_passes() -> None:
    npx = shutil.which("npx")
    assert npx is not None, "npx is not installed: install Node.js, then run `make install`"
    assert (ROOT / "node_modules" / "@bufbuild" / "buf").is_dir(), "@bufbuild/buf is missing: run `make install`"
    command = [npx, "--no-install", "buf", "lint"]
    result = subprocess.run(command, check=False, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"buf lint failed:\n{result.stdout}{result.stderr}"


def test_buf_lint_checks_comments() -> None:
    # The comment test below is the real check; this keeps buf's COMMENTS category from being dropped quietly.
    config = (ROOT / "buf.yaml").read_text(encoding="utf-8")
    assert "COMMENTS" in config and "STANDARD" in config


def documented_elements(proto: descriptor_pb2.FileDescriptorProto) -> Iterator[tuple[str, tuple[int, ...]]]:
    """Every service, method, message, field, oneof, enum and enum value, with its SourceCodeInfo path."""

    def enum(e: descriptor_pb2.EnumDescriptorProto, name: str, path: tuple[int, ...]) -> Iterator[tuple[str, tuple[int, ...]]]:
        yield f"enum {name}", path
        for i, value in enumerate(e.value):
            yield f"enum value {value.name}", (*path, ENUM_VALUE, i)

    def message(m: descriptor_pb2.DescriptorProto, name: str, path: tuple[int, ...]) -> Iterator[tuple[str, tuple[int, ...]]]:
        if m.options.map_entry:
            return  # generated for a map field; it has no source of its own
        yield f"message {name}", path
        for i, f in enumerate(m.field):
            yield f"field {name}.{f.name}", (*path, MESSAGE_FIELD, i)
        for i, o in enumerate(m.oneof_decl):
            yield f"oneof {name}.{o.name}", (*path, MESSAGE_ONEOF, i)
        for i, nested in enumerate(m.nested_type):
            yield from message(nested, f"{name}.{nested.name}", (*path, MESSAGE_NESTED, i))
        for i, e in enumerate(m.enum_type):
            yield from enum(e, f"{name}.{e.name}", (*path, MESSAGE_ENUM, i))

    for i, m in enumerate(proto.message_type):
        yield from message(m, m.name, (FILE_MESSAGE, i))
    for i, e in enumerate(proto.enum_type):
        yield from enum(e, e.name, (FILE_ENUM, i))
    for i, s in enumerate(proto.service):
        yield f"service {s.name}", (FILE_SERVICE, i)
        for j, method in enumerate(s.method):
            yield f"rpc {s.name}.{method.name}", (FILE_SERVICE, i, SERVICE_METHOD, j)


def test_every_message_field_and_enum_value_has_a_leading_comment(tmp_path: Path) -> None:
    out = tmp_path / "descriptor.pb"
    protoc("--include_source_info", f"--descriptor_set_out={out}")
    descriptors = descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes())
    (proto,) = descriptors.file
    comments = {tuple(loc.path): loc.leading_comments.strip() for loc in proto.source_code_info.location}
    elements = list(documented_elements(proto))
    assert len(elements) > 50, "the walk found too little to be checking the proto"
    missing = [what for what, path in elements if not comments.get(path)]
    assert not missing, f"no leading comment on: {', '.join(missing)}"
