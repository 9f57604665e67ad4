"""One exception family; every message tells the user what to do next."""


class RockSegError(Exception):
    """Base class of every error the engine raises on purpose."""


class InputError(RockSegError):
    """A file or array given by the user cannot be used as it is."""


class SchemeError(RockSegError):
    """A class scheme, or labels that do not fit one."""


class BundleError(RockSegError):
    """A model file that is missing, corrupt or inconsistent."""
