"""The client methods, each written once for both clients.

A method is a function that describes what to do (an `Action` or a
`Stream`, see `calls.py`) decorated with `@method` or `@iterator`. Looked up on
a client, it becomes a method that builds the description and hands it to the
client method named by its `via`. `RunwatchClient` carries it out blocking and
returns the result; `AsyncRunwatchClient` returns a coroutine (`@method`) or an
async iterator (`@iterator`). The overloads tell type checkers which.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from typing import TYPE_CHECKING, Any, Generic, ParamSpec, Self, TypeVar, overload

from runwatch.client.calls import Action, Stream

if TYPE_CHECKING:
    from runwatch.client.async_client import AsyncRunwatchClient
    from runwatch.client.sync_client import RunwatchClient

P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T")


class _Described:
    """A function that describes a client method's work, bound to a client on lookup."""

    def __init__(self, describe: Callable[..., Action[Any] | Stream[Any]]) -> None:
        self.describe = describe
        self.name = describe.__name__
        functools.update_wrapper(self, describe)
        # What help() shows: the parameters; what a call gives depends on the client.
        signature = inspect.signature(describe).replace(return_annotation=inspect.Signature.empty)
        self.signature = signature
        kinds = {p.kind for p in signature.parameters.values()}
        self_kind = min(kinds | {inspect.Parameter.POSITIONAL_OR_KEYWORD})
        self_parameter = inspect.Parameter("self", self_kind)
        self.__signature__ = signature.replace(
            parameters=[self_parameter, *signature.parameters.values()]
        )

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __call__(self, client: object, /, *args: Any, **kwargs: Any) -> Any:
        """`RunwatchClient.list_runs(client, …)`, as with any method looked up on its class."""
        return self.bind(client)(*args, **kwargs)

    def bind(self, client: object) -> Callable[..., Any]:
        describe = self.describe

        @functools.wraps(describe)
        def bound(*args: Any, **kwargs: Any) -> Any:
            work = describe(*args, **kwargs)
            return getattr(client, work.via)(work)

        bound.__signature__ = self.signature  # type: ignore[attr-defined]

        # Kept on the instance, so the next lookup finds it without this descriptor.
        vars(client)[self.name] = bound
        return bound


class method(_Described, Generic[P, R]):
    """A client method that gives one result: blocking, or awaited."""

    def __init__(self, describe: Callable[P, Action[R]]) -> None:
        super().__init__(describe)

    @overload
    def __get__(self, client: None, owner: type | None = None) -> Self: ...
    @overload
    def __get__(self, client: RunwatchClient, owner: type | None = None) -> Callable[P, R]: ...
    @overload
    def __get__(
        self, client: AsyncRunwatchClient, owner: type | None = None
    ) -> Callable[P, Coroutine[Any, Any, R]]: ...
    def __get__(self, client: object, owner: type | None = None) -> Any:
        return self if client is None else self.bind(client)


class iterator(_Described, Generic[P, T]):
    """A client method that yields results: an iterator, or an async iterator."""

    def __init__(self, describe: Callable[P, Stream[T]]) -> None:
        super().__init__(describe)

    @overload
    def __get__(self, client: None, owner: type | None = None) -> Self: ...
    @overload
    def __get__(
        self, client: RunwatchClient, owner: type | None = None
    ) -> Callable[P, Iterator[T]]: ...
    @overload
    def __get__(
        self, client: AsyncRunwatchClient, owner: type | None = None
    ) -> Callable[P, AsyncIterator[T]]: ...
    def __get__(self, client: object, owner: type | None = None) -> Any:
        return self if client is None else self.bind(client)
