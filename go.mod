module github.com/diffuse-web/diffuse

go 1.26.8

require (
	github.com/gowebapi/webapi v0.0.0-20221221115732-41cedfc27a0b // indirect
	github.com/x448/float16 v0.8.4 // indirect
)
