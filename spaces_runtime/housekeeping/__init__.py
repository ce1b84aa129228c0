"""The platform keeps its own house: what no space uses is collected (``gc`` decides, ``collect`` and ``images``
survey and remove), and the platform's state is backed up and restored on another machine (``backup``)."""
