-- load_loop.lua - never finishes loading; the budget must stop it
while true do end
