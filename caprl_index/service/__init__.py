"""`caprl-index serve`: the index as an HTTP service (FastAPI + uvicorn) with a web page.

    app.py           the FastAPI app: routers, web page, errors as `{"error": "..."}`
    routes_read.py   /v1/search, /v1/points, /v1/images, /v1/pages, /v1/files, /v1/documents, /v1/status
    routes_write.py  /v1/ingest, /v1/jobs, DELETE /v1/files, /healthz, /readyz
    core.py          `Service`: the library calls (Searcher, collection_status, ingest, delete_file)
    threads.py       `StoreThread` (owns the store), `QueryEncoder` (owns the query model)
    jobs.py          background jobs, one writer at a time
    security.py      API key, Host check, body limits, ingest roots
    images.py        crops, page renders, a box drawn on a page
    server.py        binding and uvicorn
    client.py        the CLI's client, and how it finds a running server; remote.py: its output
    static/          the web page (plain HTML, CSS, JavaScript)

Threads: uvicorn's event loop answers requests; the store thread runs every store call (searches, status,
deletes, an ingest job's writes); the query-encoder thread embeds queries; the job thread runs one ingest or
delete at a time at a lower CPU priority. Objects that are not thread-safe (the Edge store, the tokenizers,
the models) are each used from one of these threads only.

Nothing heavy is imported here: the CLI imports `client` on every command.
"""
