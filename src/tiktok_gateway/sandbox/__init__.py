"""A local TikTok Events API with a Test Events view and fault injection."""

from .app import Sandbox, create_sandbox
from .faults import Faults, FaultSettings
from .state import ReceivedEvent, SandboxState

__all__ = ["FaultSettings", "Faults", "ReceivedEvent", "Sandbox", "SandboxState", "create_sandbox"]
