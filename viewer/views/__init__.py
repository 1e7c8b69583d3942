"""Qt views of the Document: 2D slice views, the MPR layout and (later) the 3D view.

Importing this package configures pyqtgraph once: row-major images (``[row, col]``), antialiasing off.
"""

import pyqtgraph as pg

pg.setConfigOptions(imageAxisOrder="row-major", antialias=False, background="k", foreground="w")
