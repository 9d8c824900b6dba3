from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class LoopEventType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    LOOP_EVENT_TYPE_UNSPECIFIED: _ClassVar[LoopEventType]
    LOOP_EVENT_TYPE_PLAYED: _ClassVar[LoopEventType]
    LOOP_EVENT_TYPE_STOPPED: _ClassVar[LoopEventType]
LOOP_EVENT_TYPE_UNSPECIFIED: LoopEventType
LOOP_EVENT_TYPE_PLAYED: LoopEventType
LOOP_EVENT_TYPE_STOPPED: LoopEventType

class JamRequest(_message.Message):
    __slots__ = ("join", "loop_event", "ping")
    JOIN_FIELD_NUMBER: _ClassVar[int]
    LOOP_EVENT_FIELD_NUMBER: _ClassVar[int]
    PING_FIELD_NUMBER: _ClassVar[int]
    join: Join
    loop_event: LoopEvent
    ping: Ping
    def __init__(self, join: _Optional[_Union[Join, _Mapping]] = ..., loop_event: _Optional[_Union[LoopEvent, _Mapping]] = ..., ping: _Optional[_Union[Ping, _Mapping]] = ...) -> None: ...

class Join(_message.Message):
    __slots__ = ("jam_id", "name")
    JAM_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    jam_id: str
    name: str
    def __init__(self, jam_id: _Optional[str] = ..., name: _Optional[str] = ...) -> None: ...

class LoopEvent(_message.Message):
    __slots__ = ("user_id", "type")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    type: LoopEventType
    def __init__(self, user_id: _Optional[str] = ..., type: _Optional[_Union[LoopEventType, str]] = ...) -> None: ...

class Ping(_message.Message):
    __slots__ = ("client_time_unix_nanos",)
    CLIENT_TIME_UNIX_NANOS_FIELD_NUMBER: _ClassVar[int]
    client_time_unix_nanos: int
    def __init__(self, client_time_unix_nanos: _Optional[int] = ...) -> None: ...

class Pong(_message.Message):
    __slots__ = ("client_time_unix_nanos", "server_time_unix_nanos")
    CLIENT_TIME_UNIX_NANOS_FIELD_NUMBER: _ClassVar[int]
    SERVER_TIME_UNIX_NANOS_FIELD_NUMBER: _ClassVar[int]
    client_time_unix_nanos: int
    server_time_unix_nanos: int
    def __init__(self, client_time_unix_nanos: _Optional[int] = ..., server_time_unix_nanos: _Optional[int] = ...) -> None: ...

class JamResponse(_message.Message):
    __slots__ = ("joined", "join_redirect", "presence_state", "presence_diff", "loop_event", "pong")
    JOINED_FIELD_NUMBER: _ClassVar[int]
    JOIN_REDIRECT_FIELD_NUMBER: _ClassVar[int]
    PRESENCE_STATE_FIELD_NUMBER: _ClassVar[int]
    PRESENCE_DIFF_FIELD_NUMBER: _ClassVar[int]
    LOOP_EVENT_FIELD_NUMBER: _ClassVar[int]
    PONG_FIELD_NUMBER: _ClassVar[int]
    joined: Joined
    join_redirect: JoinRedirect
    presence_state: PresenceState
    presence_diff: PresenceDiff
    loop_event: LoopEvent
    pong: Pong
    def __init__(self, joined: _Optional[_Union[Joined, _Mapping]] = ..., join_redirect: _Optional[_Union[JoinRedirect, _Mapping]] = ..., presence_state: _Optional[_Union[PresenceState, _Mapping]] = ..., presence_diff: _Optional[_Union[PresenceDiff, _Mapping]] = ..., loop_event: _Optional[_Union[LoopEvent, _Mapping]] = ..., pong: _Optional[_Union[Pong, _Mapping]] = ...) -> None: ...

class Joined(_message.Message):
    __slots__ = ("user_id", "jam_id", "loop_name")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    JAM_ID_FIELD_NUMBER: _ClassVar[int]
    LOOP_NAME_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    jam_id: str
    loop_name: str
    def __init__(self, user_id: _Optional[str] = ..., jam_id: _Optional[str] = ..., loop_name: _Optional[str] = ...) -> None: ...

class JoinRedirect(_message.Message):
    __slots__ = ("requested_jam_id", "jam_id")
    REQUESTED_JAM_ID_FIELD_NUMBER: _ClassVar[int]
    JAM_ID_FIELD_NUMBER: _ClassVar[int]
    requested_jam_id: str
    jam_id: str
    def __init__(self, requested_jam_id: _Optional[str] = ..., jam_id: _Optional[str] = ...) -> None: ...

class PresenceMeta(_message.Message):
    __slots__ = ("user_id", "loop_name", "loop_event", "name", "ref", "ref_prev", "online_at_unix_nanos")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    LOOP_NAME_FIELD_NUMBER: _ClassVar[int]
    LOOP_EVENT_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    REF_FIELD_NUMBER: _ClassVar[int]
    REF_PREV_FIELD_NUMBER: _ClassVar[int]
    ONLINE_AT_UNIX_NANOS_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    loop_name: str
    loop_event: LoopEventType
    name: str
    ref: str
    ref_prev: str
    online_at_unix_nanos: int
    def __init__(self, user_id: _Optional[str] = ..., loop_name: _Optional[str] = ..., loop_event: _Optional[_Union[LoopEventType, str]] = ..., name: _Optional[str] = ..., ref: _Optional[str] = ..., ref_prev: _Optional[str] = ..., online_at_unix_nanos: _Optional[int] = ...) -> None: ...

class Presence(_message.Message):
    __slots__ = ("metas",)
    METAS_FIELD_NUMBER: _ClassVar[int]
    metas: _containers.RepeatedCompositeFieldContainer[PresenceMeta]
    def __init__(self, metas: _Optional[_Iterable[_Union[PresenceMeta, _Mapping]]] = ...) -> None: ...

class PresenceState(_message.Message):
    __slots__ = ("presences",)
    class PresencesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: Presence
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[Presence, _Mapping]] = ...) -> None: ...
    PRESENCES_FIELD_NUMBER: _ClassVar[int]
    presences: _containers.MessageMap[str, Presence]
    def __init__(self, presences: _Optional[_Mapping[str, Presence]] = ...) -> None: ...

class PresenceDiff(_message.Message):
    __slots__ = ("joins", "leaves")
    class JoinsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: Presence
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[Presence, _Mapping]] = ...) -> None: ...
    class LeavesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: Presence
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[Presence, _Mapping]] = ...) -> None: ...
    JOINS_FIELD_NUMBER: _ClassVar[int]
    LEAVES_FIELD_NUMBER: _ClassVar[int]
    joins: _containers.MessageMap[str, Presence]
    leaves: _containers.MessageMap[str, Presence]
    def __init__(self, joins: _Optional[_Mapping[str, Presence]] = ..., leaves: _Optional[_Mapping[str, Presence]] = ...) -> None: ...

class GetStatsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetStatsResponse(_message.Message):
    __slots__ = ("jam_count", "user_count", "jams")
    class JamsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: JamStats
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[JamStats, _Mapping]] = ...) -> None: ...
    JAM_COUNT_FIELD_NUMBER: _ClassVar[int]
    USER_COUNT_FIELD_NUMBER: _ClassVar[int]
    JAMS_FIELD_NUMBER: _ClassVar[int]
    jam_count: int
    user_count: int
    jams: _containers.MessageMap[str, JamStats]
    def __init__(self, jam_count: _Optional[int] = ..., user_count: _Optional[int] = ..., jams: _Optional[_Mapping[str, JamStats]] = ...) -> None: ...

class JamStats(_message.Message):
    __slots__ = ("user_count",)
    USER_COUNT_FIELD_NUMBER: _ClassVar[int]
    user_count: int
    def __init__(self, user_count: _Optional[int] = ...) -> None: ...
