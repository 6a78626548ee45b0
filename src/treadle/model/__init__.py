"""Pure values of treadle: definitions, states, the graph, templates. No I/O."""

# Import order matters: definition defines TaskBase before it imports the container kind.
from treadle.model import definition as _definition  # noqa: F401
