-- runtime_error.lua - fails while the file runs (line 3), so the load fails
local t = nil
local x = t.field
