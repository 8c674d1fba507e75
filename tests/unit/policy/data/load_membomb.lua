-- load_membomb.lua - exhausts the memory cap while loading
local s = 'x'
while true do s = s .. s end
