"""The online path: a FastAPI app that decodes images, batches them onto one model per device, and answers in
COCO results format. Nothing here is built at import time: `service.app.create_app()` builds it all."""
