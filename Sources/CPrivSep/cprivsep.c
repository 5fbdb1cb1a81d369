#include "cprivsep.h"
