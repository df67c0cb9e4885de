"""The exit codes every command keeps to: scripts and monitoring read them."""

EXIT_OK = 0  # success
EXIT_FAILED = 1  # a window, a check or a verification failed
EXIT_USAGE = 2  # a usage or configuration error
