"""`opsctl ui`: the Textual dashboard.

`app.py` holds the App (navigation and global keys only); one module per screen in
`screens/`, reusable widgets in `widgets/`, layout in `app.tcss`. Data comes only
from a :class:`opsctl.core.dashboard.Dashboard` handed to the app, called from
thread workers; results come back as messages. Nothing here imports the store,
DVC, Git or Docker.
"""
