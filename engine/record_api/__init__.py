"""The record listener: the shared record's JSON API and pages for professionals and patients
(``create_app``), served by uvicorn (``serve``)."""
