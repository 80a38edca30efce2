// STUB: the daemon's wiring (config, resource manager, D-Bus API, signals, sd_notify).
#pragma once
