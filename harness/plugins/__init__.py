"""The plugin manager (`manager`: built-ins, entry points, blocking, broken plugins) and the registry of
the backends, tasks and executors the plugins provide (`registry`)."""
