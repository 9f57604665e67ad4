"""Reading and writing images, volumes and label masks.

Images come back as grey arrays with their physical pixel size; labels as integer
masks through a class scheme; every write is atomic.
"""

from .databar import DATA_BAR_GRID, detect_data_bar, resolve_data_bar, valid_mask
from .images import (
    IMAGE_SUFFIXES,
    TESCAN_TAG,
    SEMImage,
    is_grey_ramp,
    open_lazy,
    read_image,
    sidecar_pixel_size,
    to_grey,
)
from .labels import read_labels
from .volume import LAZY_BYTES, Volume, is_volume, read_label_volume, read_volume
from .volume_write import write_volume
from .write import (
    atomic_path,
    check_output_folder,
    check_writable,
    clean_stale,
    dumps_json,
    json_safe,
    overlay,
    result_set,
    write_image,
    write_json,
    write_labels,
    write_png,
    write_text,
)
