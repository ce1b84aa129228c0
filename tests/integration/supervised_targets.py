"""What the platform tells the gateway (its SpaceTargets), in small, for tests that put a real Gateway in front of
a real Supervisor: the supervisor's state, every app public, plus fixed answers for a few names."""

from __future__ import annotations

from starlette.responses import PlainTextResponse
from starlette.types import Receive, Scope, Send

from spaces_runtime.gateway.targets import Failed, Missing, Pending, Target, Upstream
from spaces_runtime.stages import is_error
from spaces_runtime.supervisor.loop import Supervisor


class SupervisedTargets:
    def __init__(self, supervisor: Supervisor, fixed: dict[str, Target] | None = None) -> None:
        self.supervisor = supervisor
        self.fixed = fixed or {}

    async def target(self, owner: str, name: str) -> Target:
        space = f"{owner}/{name}"
        if space in self.fixed:
            return self.fixed[space]
        upstream = self.supervisor.upstream(space)
        if upstream is not None:
            return Upstream(upstream, forward_prefix=True)
        stage = self.supervisor.stage(space)
        if stage is None:
            return Missing()
        if is_error(stage):
            return Failed(stage, self.supervisor.logs.tail(space, "run", 20))
        return Pending(stage, title=space, detail="starting")

    def touch(self, owner: str, name: str) -> None:
        self.supervisor.touch(f"{owner}/{name}")

    def heard_from(self, owner: str, name: str) -> None:
        self.supervisor.heard_from(f"{owner}/{name}")

    async def wake(self, owner: str, name: str) -> None:
        await self.supervisor.wake(f"{owner}/{name}")

    def admits(self, owner: str, name: str, credentials: object) -> bool:
        return True  # every app here is public; private spaces are tested in test_people.py

    def share_problem(self, owner: str, name: str, token: str) -> str | None:
        return "these apps have no share links"


async def platform_app(scope: Scope, receive: Receive, send: Send) -> None:
    """What the gateway hands every request that is not for an app."""
    await PlainTextResponse("the platform's own app")(scope, receive, send)
