"""Translation between protobuf messages and jamservice's plain values."""

from __future__ import annotations

from google.protobuf.message import DecodeError

from jamservice.errors import BadRequest
from jamservice.messages import Join, Joined, LoopChange, Outgoing, Ping, Play, Pong, Redirected, Request, Snapshot
from jamservice.presence import Diff, LoopEventType, Meta, State
from jamservice.v1 import jam_pb2 as pb


def decode_request(raw: bytes) -> Request:
    """Parse one JamRequest, or raise BadRequest."""
    try:
        request = pb.JamRequest.FromString(raw)
    except DecodeError as error:
        raise BadRequest(f"malformed JamRequest: {error}") from None
    kind = request.WhichOneof("kind")
    if kind == "join":
        return Join(jam_id=request.join.jam_id, name=request.join.name)
    if kind == "loop_event":
        event = request.loop_event
        # proto3 enums are open: a number we do not know is refused like UNSPECIFIED, by Play.
        known = event.type in LoopEventType._value2member_map_
        loop_event = LoopEventType(event.type) if known else LoopEventType.UNSPECIFIED
        return Play(loop_event=loop_event, user_id=event.user_id)
    if kind == "ping":
        return Ping(client_time=request.ping.client_time_unix_nanos)
    raise BadRequest("JamRequest has no kind set: send join, loop_event or ping")


def _fill(target: pb.PresenceMeta, meta: Meta) -> None:
    target.user_id = meta.user_id
    target.loop_name = meta.loop_name
    target.loop_event = meta.loop_event.value  # type: ignore[assignment]
    target.name = meta.name
    target.ref = meta.ref
    target.ref_prev = meta.ref_prev
    target.online_at_unix_nanos = meta.online_at


def _fill_presences(target: object, state: State) -> None:
    for key, metas in state.items():
        presence = target[key]  # type: ignore[index]
        for meta in metas:
            _fill(presence.metas.add(), meta)


def encode(message: Outgoing) -> bytes:
    """Serialise one outgoing message as a JamResponse."""
    response = pb.JamResponse()
    if isinstance(message, Diff):
        _fill_presences(response.presence_diff.joins, message.joins)
        _fill_presences(response.presence_diff.leaves, message.leaves)
        if not message.joins and not message.leaves:
            response.presence_diff.SetInParent()
    elif isinstance(message, LoopChange):
        response.loop_event.user_id = message.user_id
        response.loop_event.type = message.loop_event.value  # type: ignore[assignment]
    elif isinstance(message, Pong):
        response.pong.client_time_unix_nanos = message.client_time
        response.pong.server_time_unix_nanos = message.server_time
    elif isinstance(message, Snapshot):
        response.presence_state.SetInParent()
        _fill_presences(response.presence_state.presences, message.state)
    elif isinstance(message, Joined):
        response.joined.user_id = message.user_id
        response.joined.jam_id = message.jam_id
        response.joined.loop_name = message.loop_name
    elif isinstance(message, Redirected):
        response.join_redirect.requested_jam_id = message.requested_jam_id
        response.join_redirect.jam_id = message.jam_id
    else:
        raise TypeError(f"cannot encode {message!r}")
    return response.SerializeToString()
