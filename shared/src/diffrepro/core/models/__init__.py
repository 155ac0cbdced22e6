"""Networks assembled from :mod:`diffrepro.core.nn`. Import each model from its module
(``from diffrepro.core.models.unet import UNetModel``) so importing this package stays cheap."""
