"""Domain errors: one class per way a request or a stream can fail."""


class JamError(Exception):
    """Base of every error a client is told about."""


class BadRequest(JamError):
    """The request is malformed or out of range."""


class NotJoined(JamError):
    """The request needs a seat in a jam first."""


class AlreadyJoined(JamError):
    """The stream already holds a seat."""


class Impersonation(JamError):
    """The request names somebody else."""


class Unauthenticated(JamError):
    """The bearer token is missing or invalid."""


class SlowConsumer(JamError):
    """The stream's outbox filled up because its reader fell behind."""

    def __init__(self) -> None:
        super().__init__("slow consumer: outbox full")


class RateLimited(JamError):
    """The member sent loop events faster than allowed."""


class JoinTimeout(JamError):
    """The stream did not take a seat in time."""


class TooManyStreams(JamError):
    """The process holds as many streams as it may."""


class ShuttingDown(JamError):
    """The server is stopping."""

    def __init__(self) -> None:
        super().__init__("server shutting down")
