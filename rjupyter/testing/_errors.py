"""The one exception the test lab raises.

```
RuntimeError
└── LabError    a lab could not be built, used or torn down
```

Bad arguments raise `ValueError`; a command run with `LabHost.run` that outlives its timeout raises
`subprocess.TimeoutExpired`, as `subprocess.run` does.
"""

from __future__ import annotations

__all__ = ["LabError"]


class LabError(RuntimeError):
    """A lab step failed: a system command, sshd, the jupyter venv, or teardown.

    The message names the step and what to check next; the cause, if any, is in `__cause__`.
    """
