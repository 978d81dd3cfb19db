"""One function per step of the state machine; the Lambda handlers in ``functions/`` call them."""
