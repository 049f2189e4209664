"""The book's machinery: what runs and reports the chapters, built on the library (never imported by it).

- :mod:`kdlab.book.profiles`: one notebook, three sizes (``smoke``, ``default``, ``full``);
- :mod:`kdlab.book.claims`: the catalogue of the sources' claims and the one verdict rule;
- :mod:`kdlab.book.results`: each chapter's results as JSON;
- :mod:`kdlab.book.compare`: every method on the results chapter's common setting;
- :mod:`kdlab.book.plots`: the book's figures;
- :mod:`kdlab.book.runner`: running chapters with papermill and building the Jupyter Book.
"""
