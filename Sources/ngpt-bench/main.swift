import Kernels
print(Threads.startupLine)
