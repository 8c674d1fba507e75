-- empty.lua - a policy with no handlers: every hook accepts
local unused = 1
