"use strict";
// A click on the issued token selects all of it, ready to copy. A file, not an inline onclick:
// the Content-Security-Policy (mcpd/middleware.py) runs scripts from this server's files only.
document.getElementById("issued-token").addEventListener("click", (event) => event.target.select());
